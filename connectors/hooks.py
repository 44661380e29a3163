"""`POST /hooks/<connection key>` on a tenant's host: partners' webhooks into the inbox.

No session, no CSRF token: the connection's signature scheme is the authentication
(`connectors.inbox.webhook_receive`). Answers: 202 `{"event_id"}` when stored, 200 with the first
event's id for a redelivery, problem+json saying why for anything refused.
"""

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from config.problems import PROBLEM_BASE
from connectors.inbox import WebhookRefused, webhook_receive


def _content_length(request: HttpRequest) -> int | None:
    try:
        return int(request.META.get("CONTENT_LENGTH") or "")
    except ValueError:
        return None


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, key: str) -> JsonResponse:
    try:
        length = _content_length(request)
        # Not read when the sender says it is too big: the refusal needs only its length.
        body = b"" if length is not None and length > settings.BATON_WEBHOOK_MAX_BYTES else request.body
        received = webhook_receive(connection_key=key, body=body, headers=request.headers, content_length=length)
    except WebhookRefused as refused:
        problem = {
            "type": PROBLEM_BASE + "webhook-" + refused.kind,
            "title": refused.title,
            "status": refused.status,
            "detail": refused.detail,
        }
        return JsonResponse(problem, status=refused.status, content_type="application/problem+json")
    answer = {"event_id": received.event.pk, "duplicate": received.duplicate, "status": received.event.status}
    return JsonResponse(answer, status=200 if received.duplicate else 202)
