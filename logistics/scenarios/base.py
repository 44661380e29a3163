"""What every demo scenario stands on: the outcome of a step, the context a scenario plays in (the
tenant, its public address, the partners' channels, `expect`), and the scenario's own master data
and workflow definitions.

A scenario plays the outside world – the ERP's user keying an order, the carrier's EDI desk, the
carrier's tracking webhooks, a document intake – against the tenant's real stack: the web server
takes the webhooks on the tenant's public host, the Celery worker dispatches the inbox and advances
the runs, and the runs call the sandbox systems through the tenant's demo connections
(`connectors.demo`). Then it reads what became of it, in the tenant's schema and at the sandbox
systems (their `/_sandbox/effects`), each expectation within a timeout."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from connectors.auth import signing_secrets_open
from connectors.demo import DEMO_MARK, OUR_EDI_QUALIFIER, loopback_post
from connectors.edi import InMemoryControlNumbers, PartnerSettings, write_interchange
from connectors.edi_transport import EdiPartnerInput, edi_partner_configure, edi_receive
from connectors.inbox import connection_inbound_configure, signature_scheme
from connectors.models import AuthMethod, Connection, ConnectionKind, EdiPartner, InboundMapper, InboundScheme
from connectors.selectors import connection_input
from connectors.services import ConnectionInput, connection_create, connection_update
from governance.services import Actor
from logistics.models import CustomerAccount, Location
from logistics.services import location_create
from tenants.models import Tenant
from tenants.selectors import site_for_tenant
from workflows.models import Definition, DefinitionVersion, Run, TemplateVersion
from workflows.services import ApprovalRefused, WorkflowError, definition_clone, definition_version_publish, definition_version_submit

ACTOR = Actor.system("demo-scenario")
PREFIX = "scn-"  # the scenarios' own master data, connections and definitions
DEFAULT_TIMEOUT = 60.0
POLL_SECONDS = 0.25
DOCUMENTS_KEY = f"{PREFIX}documents"  # the scenarios' own document intake, when the demo has none
DEMO_DOCUMENTS_KEY = "carrier-documents"  # the demo's document desk (Baton events over Standard Webhooks)
CUSTOMER_CODE = f"{PREFIX}shipper"
ORIGIN_CODE, DESTINATION_CODE = f"{PREFIX}memphis-dc", f"{PREFIX}dallas-store"
PLACES = (
    (ORIGIN_CODE, "Memphis DC (scenarios)", "3500 Tchulahoma Rd", "Memphis", "TN", "America/Chicago"),
    (DESTINATION_CODE, "Dallas store (scenarios)", "1 Elm St", "Dallas", "TX", "America/Chicago"),
)


@dataclass
class Outcome:
    """One expected outcome of a scenario: met or not, how long it took, and what was seen."""

    step: str
    expected: str
    ok: bool
    seconds: float
    detail: str = ""
    scenario: str = ""

    def as_data(self) -> dict[str, Any]:
        return asdict(self)


class OutcomeMissing(Exception):
    """An expected outcome did not happen (already recorded): the scenario stops there."""


class ScenarioUnavailable(Exception):
    """The scenario cannot be played in this tenant; the message says why and what to do."""


@dataclass(frozen=True)
class Scenario:
    """A named scenario: the library template it proves and how it plays (None: not written yet)."""

    name: str
    title: str
    template_key: str
    play: Callable[[ScenarioContext], None] | None = None
    template_major: int | None = None  # the major version the scenario is written for (None: any)

    @property
    def template_named(self) -> str:
        return f"{self.template_key} {self.template_major}.x" if self.template_major is not None else self.template_key


@dataclass
class ScenarioContext:
    """The tenant a scenario plays in, and the means to play and check. Used inside the tenant's
    schema (the command switches to it)."""

    tenant: Tenant
    timeout: float = DEFAULT_TIMEOUT
    base_url: str = ""
    outcomes: list[Outcome] = field(default_factory=list)
    poster: Callable[[str, bytes, dict[str, str]], int] = loopback_post
    watched: list[Run] = field(default_factory=list)  # runs whose state a missing outcome reports
    on_record: Callable[[Outcome], None] | None = None  # told of each outcome as it is recorded
    scenario: str = ""  # the scenario playing, named on its outcomes
    _sequence: Any = field(default_factory=lambda: itertools.count(1))

    def __post_init__(self) -> None:
        self.base_url = self.base_url or site_for_tenant(self.tenant).base_url
        self._stamp = dt.datetime.now(dt.UTC).strftime("%m%d%H%M%S") + str(int(time.time() * 10) % 10)
        self._control = (int(time.time() * 100) % 900_000_000) + 1

    # --- numbers --------------------------------------------------------------------------------

    def number(self, prefix: str) -> str:
        """A number no earlier scenario run used: `SCN-<month day time>-<n>` after `prefix`."""
        return f"{prefix}SCN-{self._stamp}-{next(self._sequence)}"

    def control_number(self) -> int:
        """An X12 interchange control number of its own (the inbox keys interchanges on it)."""
        return self._control + next(self._sequence)

    # --- outcomes -------------------------------------------------------------------------------

    def record(self, step: str, expected: str, *, ok: bool, seconds: float = 0.0, detail: str = "") -> Outcome:
        outcome = Outcome(step=step, expected=expected, ok=ok, seconds=round(seconds, 2), detail=detail, scenario=self.scenario)
        self.outcomes.append(outcome)
        if self.on_record is not None:
            self.on_record(outcome)
        return outcome

    def done(self, step: str, expected: str, detail: str = "", *, began: float | None = None) -> None:
        """Something the scenario did itself, and it worked."""
        self.record(step, expected, ok=True, seconds=time.monotonic() - began if began else 0.0, detail=detail)

    def missing(self, step: str, expected: str, detail: str, *, began: float | None = None) -> OutcomeMissing:
        """Record a missing outcome; raise what this returns to stop the scenario."""
        self.record(step, expected, ok=False, seconds=time.monotonic() - began if began else 0.0, detail=detail)
        return OutcomeMissing(f"{step}: {detail}")

    def expect(self, step: str, expected: str, check: Callable[[], Any], timeout: float | None = None) -> Any:
        """Poll `check()` until it gives something true (its detail: the value if it is text) and
        record the outcome; after `timeout` (the context's by default) record it missing, with the
        last `NotYet` reason and the watched runs' state, and raise OutcomeMissing."""
        began = time.monotonic()
        deadline = began + (self.timeout if timeout is None else timeout)
        last = "nothing seen"
        while True:
            try:
                value = check()
            except NotYet as pending:
                value, last = None, str(pending)
            if value:
                self.record(step, expected, ok=True, seconds=time.monotonic() - began, detail=value if isinstance(value, str) else "")
                return value
            if time.monotonic() >= deadline:
                raise self.missing(step, expected, f"not within {deadline - began:.0f} s: {last}{self._runs_state()}", began=began)
            time.sleep(POLL_SECONDS)

    def _runs_state(self) -> str:
        states = []
        for run in self.watched:
            row = Run.objects.filter(pk=run.pk).values("status", "current_step", "waiting_for", "error").first()
            current: dict[str, Any] = dict(row) if row else {}
            said = f"run {run.pk} {current.get('status', 'gone')} at {current.get('current_step') or '-'}"
            if current.get("waiting_for"):
                said += f" ({current['waiting_for']})"
            if current.get("error"):
                said += f": {str(current['error'])[:200]}"
            states.append(said)
        return f" [{'; '.join(states)}]" if states else ""

    # --- the partners' channels -----------------------------------------------------------------

    def webhook_post(self, connection: Connection, document: dict[str, Any]) -> int:
        """POST `document` to the connection's webhook on the tenant's public host, signed as the
        connection's scheme says with its current secret (like the real partner); the HTTP status."""
        secrets = signing_secrets_open(connection.inbound_secrets)
        if not connection.inbound_scheme or not secrets:
            raise ScenarioUnavailable(f"the connection '{connection.key}' takes no webhooks: set up its inbound signature first")
        body = json.dumps(document, separators=(",", ":")).encode()
        signing = signature_scheme(connection.inbound_scheme, connection.inbound_scheme_settings or {})
        headers = {"Content-Type": "application/json", "User-Agent": "baton-demo-scenario/1", **signing.sign(body, secrets=secrets[:1])}
        return self.poster(f"{self.base_url}/hooks/{connection.key}", body, headers)

    def edi_send(self, partner: EdiPartner, documents: Sequence[Any]) -> int:
        """The partner's EDI desk sends `documents` in one interchange (as an upload or the API
        would: `edi_receive`); the inbox event's id."""
        settings = PartnerSettings(
            partner=partner.connection.key,
            sender_qualifier=partner.their_qualifier,
            sender_id=partner.their_id,
            receiver_qualifier=partner.our_qualifier,
            receiver_id=partner.our_id,
            version=partner.version,
            group_version=partner.group_version,
            usage=partner.usage,
        )
        text = write_interchange(
            list(documents), partner=settings, control_numbers=InMemoryControlNumbers(self.control_number()), now=dt.datetime.now(dt.UTC)
        )
        received = edi_receive(connection=partner.connection, data=text, channel="api")
        return received.event.pk

    def sandbox_effects(self, connection: Connection, action: str) -> list[dict[str, Any]]:
        """What the sandbox system behind a demo connection did (`GET /_sandbox/effects`)."""
        try:
            with urllib.request.urlopen(f"{connection.base_url.rstrip('/')}/_sandbox/effects", timeout=5) as answer:
                effects = json.loads(answer.read())["effects"]
        except (OSError, ValueError, KeyError) as error:
            raise NotYet(f"the {connection.key} sandbox at {connection.base_url} does not answer: {error}") from error
        return [effect for effect in effects if effect.get("action") == action]

    def sandbox_post(self, connection: Connection, path: str, document: dict[str, Any], *, key: str) -> tuple[int, dict[str, Any]]:
        """A person at the partner's system does something there (the ERP's user keys an order)."""
        request = urllib.request.Request(
            f"{connection.base_url.rstrip('/')}{path}",
            data=json.dumps(document).encode(),
            headers={"Content-Type": "application/json", "Idempotency-Key": key},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")


class NotYet(Exception):
    """Raised by a check: not there yet, and why (reported if it never comes)."""


# --- the tenant's set-up ------------------------------------------------------------------------------


def demo_connection(key: str) -> Connection:
    """A demo connection to a sandbox system on this machine (`manage.py seed_demo` makes them)."""
    connection = Connection.objects.filter(key=key).first()
    if connection is None:
        raise ScenarioUnavailable(f"the tenant has no '{key}' connection: run `manage.py seed_demo` (or `make run`) to make the demo's")
    if DEMO_MARK not in (connection.settings or {}):
        raise ScenarioUnavailable(f"the '{key}' connection is not a demo connection: the scenarios play the sandbox partners only")
    if not connection.enabled:
        raise ScenarioUnavailable(f"the '{key}' connection is disabled: enable it on the connections page")
    if connection.transport == "https" and urlsplit(connection.base_url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise ScenarioUnavailable(f"the '{key}' connection points at {connection.base_url}, not at a sandbox on this machine")
    return connection


def demo_actions_ensure(connection: Connection, actions: dict[str, dict[str, str]]) -> list[str]:
    """Add the sandbox actions a template calls that the demo connection was seeded without (a demo
    seeded before the template existed); what was added. A person's own actions are kept."""
    current = connection_input(connection)
    known = current.settings.get("actions") or {}
    added = [name for name in actions if name not in known]
    if added:
        current.settings = {**current.settings, "actions": {**known, **{name: actions[name] for name in added}}}
        connection_update(connection=connection, data=current, actor=ACTOR)
    return added


def edi_partner_for(scac: str, *, tenant_slug: str) -> EdiPartner:
    """The EDI partner whose desk speaks for the carrier `scac`; one is set up (`scn-edi-<scac>`,
    on the carrier sandbox's address) when the tenant has none."""
    partner = EdiPartner.objects.select_related("connection").filter(their_id=scac, connection__enabled=True).first()
    if partner is not None:
        return partner
    key = f"{PREFIX}edi-{scac.lower()}"
    connection = Connection.objects.filter(key=key).first() or connection_create(
        data=ConnectionInput(
            key=key,
            name=f"{scac} EDI (scenarios)",
            kind=ConnectionKind.EDI_PARTNER,
            base_url="http://127.0.0.1:9",
            auth_method=AuthMethod.NONE,
            settings={"scenario": True},
        ),
        actor=ACTOR,
    )
    our = EdiPartner.objects.filter(their_qualifier="02").values_list("our_qualifier", "our_id").first()
    our_qualifier, our_id = our or (OUR_EDI_QUALIFIER, f"BATON{tenant_slug.upper()}"[:15])
    edi_partner_configure(
        connection=connection,
        data=EdiPartnerInput(their_qualifier="02", their_id=scac, our_qualifier=our_qualifier, our_id=our_id, usage="T"),
        actor=ACTOR,
    )
    return EdiPartner.objects.select_related("connection").get(connection=connection)


def document_intake() -> Connection:
    """Where a POD is announced (`document.received`): the demo's document desk when the tenant has
    it, else the scenarios' own intake (`scn-documents`), Baton events over signed webhooks as a
    scanning service or mailbox robot would send them."""
    demo = Connection.objects.filter(key=DEMO_DOCUMENTS_KEY, enabled=True, inbound_mapper=InboundMapper.CANONICAL).first()
    if demo is not None and demo.inbound_scheme and demo.inbound_secrets:
        return demo
    connection = Connection.objects.filter(key=DOCUMENTS_KEY).first()
    if connection is None:
        connection = connection_create(
            data=ConnectionInput(
                key=DOCUMENTS_KEY,
                name="Document intake (scenarios)",
                kind=ConnectionKind.EMAIL,
                base_url="https://documents.invalid",
                settings={"scenario": True},
            ),
            actor=ACTOR,
        )
    if not connection.inbound_scheme:
        connection_inbound_configure(
            connection=connection, scheme=InboundScheme.STANDARD_WEBHOOKS, mapper=InboundMapper.CANONICAL, actor=ACTOR
        )
        connection.refresh_from_db()
    return connection


def master_data() -> tuple[CustomerAccount, Location, Location]:
    """The scenarios' shipper and its two places, made once (codes `scn-…`)."""
    # No service writes customer accounts yet; seed_demo makes its own the same way.
    customer, _created = CustomerAccount.objects.get_or_create(
        code=CUSTOMER_CODE, defaults={"name": "Scenario Shipper Inc.", "service_tier": "standard"}
    )
    places = []
    for code, name, street, city, region, zone in PLACES:
        place = Location.objects.filter(code=code).first() or location_create(
            code=code, name=name, address_line1=street, city=city, region=region, country="US", time_zone=zone, actor=ACTOR
        )
        places.append(place)
    return customer, places[0], places[1]


def template_major(template: dict[str, Any]) -> str:
    return str(template["version"]).split(".", 1)[0]


def definition_published(template: dict[str, Any], *, name: str, parameters: dict[str, Any]) -> tuple[Definition, str]:
    """The tenant's published definition of the template's major version (the newest, if several),
    or else a clone of the library's version published by the scenarios; and what was done."""
    major = template_major(template)
    found = (
        Definition.objects.filter(template_key=template["key"], published_version__isnull=False, template_version__startswith=f"{major}.")
        .select_related("published_version")
        .order_by("-pk")
        .first()
    )
    if found is not None:
        return found, f"the tenant's '{found.key}' v{found.published_version.number if found.published_version else '?'}"
    version = (
        TemplateVersion.objects.filter(template__key=template["key"], major=int(major)).order_by("-minor", "-patch").first()
        if major.isdigit()
        else None
    )
    if version is None:
        raise ScenarioUnavailable(f"not available: template {template['key']} {template['version']} is not in the library")
    key = f"{PREFIX}{template['key']}"[:80]
    definition = Definition.objects.filter(key=key).first()
    try:
        if definition is None:
            definition = definition_clone(
                template_version=version, key=key, name=name, parameters=parameters, connection_bindings={}, actor=ACTOR
            )
        draft = DefinitionVersion.objects.filter(definition=definition).order_by("-number").first()
        if draft is None:
            raise ScenarioUnavailable(f"the definition '{key}' has no version: delete it and run the scenario again")
        if draft.status == "draft":
            draft = definition_version_submit(version=draft, actor=ACTOR)
        definition_version_publish(version=draft, actor=ACTOR)
    except ApprovalRefused as refused:
        raise ScenarioUnavailable(
            f"the scenario cloned {template['key']} {version.version} as '{key}' but cannot publish it: {refused}. "
            "Publish it on the workflows page and run the scenario again"
        ) from refused
    except WorkflowError as error:
        raise ScenarioUnavailable(f"cannot clone {template['key']} {version.version} as '{key}': {error}") from error
    definition.refresh_from_db()
    return definition, f"cloned {template['key']} {version.version} as '{key}' and published it"


def library_has(template_key: str, major: int | None = None) -> bool:
    versions = TemplateVersion.objects.filter(template__key=template_key)
    return (versions if major is None else versions.filter(major=major)).exists()
