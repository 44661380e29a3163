"""`manage.py demo_scenario --tenant acme --scenario order_release [--json] [--timeout 60]`: drive
one demo scenario (or `all`) through the running stack – web, worker, sandbox systems, as
`make run` starts them – and say, step by step, whether each expected outcome happened.

Exit status: 0 when every expected outcome happened, 1 when one is missing (named on stderr), 2
for bad arguments (an unknown tenant or scenario, with the valid ones)."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import schema_context

from logistics.scenarios import ALL, scenario_names, scenario_play, scenarios
from logistics.scenarios.base import DEFAULT_TIMEOUT, Outcome, ScenarioContext
from tenants.db import connection
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Drive a demo scenario through the real stack (web, worker, sandbox systems) and check each step's outcome."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", required=True, help="the tenant's slug, such as acme")
        parser.add_argument("--scenario", required=True, help=f"one of: {', '.join(scenario_names())}")
        parser.add_argument("--json", action="store_true", help="print one JSON document {tenant, scenario, ok, outcomes}")
        parser.add_argument(
            "--timeout", type=float, default=DEFAULT_TIMEOUT, help=f"seconds each expected outcome may take (default {DEFAULT_TIMEOUT:.0f})"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        connection.set_schema_to_public()
        tenant = self._tenant(options["tenant"])
        chosen = self._scenarios(options["scenario"])
        if not options["timeout"] > 0:
            raise CommandError(f"--timeout must be a number of seconds above 0, not {options['timeout']}", returncode=2)
        as_json = options["json"]
        context = ScenarioContext(tenant=tenant, timeout=options["timeout"])
        if not as_json:
            self.stdout.write(f"{tenant.name} ({tenant.slug}) at {context.base_url}")
        outcomes: list[Outcome] = []
        with schema_context(tenant.schema_name):
            connection.tenant = tenant  # the site's public address and brand follow the tenant
            for name in chosen:
                scenario = scenarios()[name]
                if not as_json:
                    self.stdout.write(f"{scenario.name}: {scenario.title}")
                context.on_record = None if as_json else self._line  # progress: each step as it ends
                outcomes += scenario_play(scenario, context)
        connection.set_schema_to_public()
        missing = [outcome for outcome in outcomes if not outcome.ok]
        if as_json:
            document = {
                "tenant": tenant.slug,
                "scenario": options["scenario"],
                "ok": not missing,
                "outcomes": [outcome.as_data() for outcome in outcomes],
            }
            self.stdout.write(json.dumps(document, indent=2, ensure_ascii=False))
        else:
            met = len(outcomes) - len(missing)
            self.stdout.write(f"{met} of {len(outcomes)} expected outcomes happened")
        if missing:
            named = "; ".join(f"{outcome.scenario}: {outcome.step}" for outcome in missing)
            raise CommandError(f"{len(missing)} expected outcome{'s' if len(missing) > 1 else ''} missing – {named}", returncode=1)

    def _line(self, outcome: Outcome) -> None:
        mark = "✓" if outcome.ok else "✗"
        detail = f" – {outcome.detail}" if outcome.detail else ""
        self.stdout.write(f"  {mark} {outcome.step:<24} {outcome.seconds:6.1f} s  {outcome.expected}{detail}")

    def _tenant(self, slug: str) -> Tenant:
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            known = ", ".join(Tenant.objects.order_by("slug").values_list("slug", flat=True)) or "none"
            raise CommandError(f"no tenant '{slug}'; the tenants are: {known}", returncode=2)
        if tenant.status != "ready":
            raise CommandError(f"the tenant '{slug}' is {tenant.status}, not ready: scenarios play in ready tenants only", returncode=2)
        return tenant

    def _scenarios(self, name: str) -> list[str]:
        known = list(scenarios())
        if name == ALL:
            return known
        if name not in known:
            raise CommandError(f"no scenario '{name}'; choose one of: {', '.join(scenario_names())}", returncode=2)
        return [name]
