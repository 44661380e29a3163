"""The ingest bench's baseline: a bare Django view that checks one HMAC-SHA256 of the body and
inserts one row, served by the same gunicorn processes, behind the same middleware and tenant
routing as `/hooks/<key>` (the bench's settings point the tenant URLconf at `bench.ingest_urls`:
the tenant one plus `POST /bench/baseline`). The inbox's own work – the connection lookup, its
secrets decrypted, the Standard Webhooks check, the deduplicating insert with its dispatch row and
the broker send after commit – is what the ratio between the two prices.

The table is created by the bench with raw SQL in the bench tenant's schema of its throwaway
database (`BASELINE_TABLE_SQL`), not by a migration: nothing outside the bench knows it."""

from __future__ import annotations

import hashlib
import hmac

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from tenants.db import connection

BASELINE_PATH = "/bench/baseline"
BASELINE_SECRET = b"bench-ingest-baseline-secret"
SIGNATURE_HEADER = "X-Signature"
BASELINE_TABLE_SQL = """
CREATE TABLE bench_ingest_baseline (
    id bigserial PRIMARY KEY,
    body text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
)
"""


def baseline_signature(body: bytes) -> str:
    return hmac.new(BASELINE_SECRET, body, hashlib.sha256).hexdigest()


@csrf_exempt
@require_POST
def baseline_receive(request: HttpRequest) -> HttpResponse:
    """One HMAC and one INSERT: what any webhook receiver has to do at the least."""
    body = request.body
    if not hmac.compare_digest(baseline_signature(body), request.headers.get(SIGNATURE_HEADER, "")):
        return HttpResponse(status=401)
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO bench_ingest_baseline (body) VALUES (%s) RETURNING id", [body.decode("utf-8", errors="replace")])
        row = cursor.fetchone()
    return JsonResponse({"event_id": row[0]}, status=202)
