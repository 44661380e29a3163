"""What a `notify` step sends: the step queues, a task or a worker delivers.

`webhook`: the event `notification.<template>` to the endpoints the run's customer subscribed
(`connectors.deliveries.webhook_publish`, in the step's own transaction, keyed by the step's
idempotency key so a repeated step adds nothing); without a customer, the tenant's own endpoints.
The customer is the run input's `customer_account_id`. The payload is the template, the run's
correlation keys and its input: a template that tells customers must run on customer-safe input.

`email`: after the step commits, `workflows.notify_email` emails the active people whose role is
in `to_roles` (and the customer's people for the role `customer`), in the tenant's brand, once per
step key. `sms` is recorded, not sent (no SMS provider yet).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import structlog
from django.conf import settings
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from tenants.db import connection
from workflows.models import Run

log = structlog.get_logger("baton.workflows")

SENT_SECONDS = 7 * 24 * 3600  # how long "this step's email went" is remembered (redeliveries come sooner)


def customer_account_of(run: Run) -> int | None:
    value = run.input.get("customer_account_id") if isinstance(run.input, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def notify_queue(run: Run, step: dict[str, Any], key: str) -> dict[str, Any]:
    """Queue the step's notification; returns what was queued, for the step's output."""
    channel, template = step["channel"], step["template"]
    if channel == "webhook":
        from connectors.deliveries import webhook_publish

        deliveries = webhook_publish(
            event_type=f"notification.{template}",
            event_id=key,
            payload={"template": template, "correlation": run.correlation, "input": run.input},
            customer_account_id=customer_account_of(run),
        )
        return {"queued": {"webhooks": len(deliveries)}}
    if channel == "email":
        transaction.on_commit(partial(_email_send, connection.schema_name, run.pk, step["id"], key))
        return {"queued": {"email": True}}
    return {"queued": {}, "note": f"{channel} is recorded only: no provider is configured"}


def _email_send(schema: str, run_id: int, step_id: str, key: str) -> None:
    from workflows.tasks import notify_email

    try:
        notify_email.apply_async(args=[run_id, step_id, key], headers={"_schema_name": schema}, retry=False)
    except Exception as error:  # noqa: BLE001 - the step stands; the email is lost with the broker (logged)
        log.warning("notification email not queued", run=run_id, step=step_id, error=f"{type(error).__name__}: {error}")


def notify_email_send(run_id: int, step_id: str, key: str) -> int:
    """Email the step's recipients (inside the tenant's schema); returns how many were sent."""
    from accounts.models import Role
    from accounts.selectors import users_filter, users_of_customer_account
    from tenants.selectors import recipient_language, site_for_tenant, tenants_filter

    run = Run.objects.select_related("definition", "definition_version").filter(pk=run_id).first()
    step = next((item for item in (run.definition_version.spec.get("steps", []) if run else []) if item["id"] == step_id), None)
    if run is None or step is None:
        return 0
    # Once per step key; the run's creation time keeps ids reused by a recreated schema apart.
    if not cache.add(f"workflows:notified:{connection.schema_name}:{key}:{run.created_at.timestamp():.6f}", 1, timeout=SENT_SECONDS):
        return 0
    roles = [role for role in step["to_roles"] if role != "customer"]
    people = {user.email: user for user in users_filter(roles=roles).filter(is_active=True)}
    account = customer_account_of(run)
    if "customer" in step["to_roles"] and account is not None:
        people |= {user.email: user for user in users_of_customer_account(account)}
    if not people:
        return 0
    tenant = tenants_filter().get(schema_name=connection.schema_name)
    site = site_for_tenant(tenant)
    title = step.get("name") or step["template"].replace("-", " ").capitalize()
    context = {
        "site": site,
        "run": run,
        "title": title,
        "template": step["template"],
        "facts": [(name.upper() if len(name) <= 3 else name.capitalize(), value) for name, value in run.correlation.items()],
        "run_link": site.base_url + reverse("workflows:run", args=[run.pk], urlconf=settings.ROOT_URLCONF),
    }
    messages = []
    for person in people.values():
        # In the language the person chose, else the workspace's default (tenants.Tenant.default_language).
        with translation.override(recipient_language(chosen=person.language, tenant=tenant)):
            role_names = ", ".join(_(Role(role).label) if role in Role.values else role for role in step["to_roles"])
            personal = {**context, "person": person, "staff": person.role != "customer", "roles": role_names}
            message = EmailMultiAlternatives(
                subject=f"{title} – {run.definition.name} – {site.product_name}",
                body=render_to_string("email/notification.txt", personal),
                from_email=site.from_email,
                to=[person.email],
            )
            message.attach_alternative(render_to_string("email/notification.html", personal), "text/html")
        messages.append(message)
    with get_connection() as mail:
        mail.send_messages(messages)
    return len(messages)
