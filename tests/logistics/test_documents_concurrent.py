"""A document stored by two transactions at the same moment (committed: the second waits on the
first's unique index entry, so this cannot run inside a test transaction)."""

from __future__ import annotations

import threading
import time
from typing import Any

from django.db import connection as db
from django.db import transaction
from django.utils import timezone
from django_tenants.utils import schema_context

from logistics.models import Document
from logistics.services import document_record, shipment_create
from tests.logistics.conftest import SYSTEM


def test_a_document_stored_twice_at_the_same_moment_is_one_document(world, committed, settings, tmp_path):
    """Two transactions store the same POD at once (a POD event starts the claims and the
    invoicing runs): the second waits on the unique index and gets the first's document."""
    settings.MEDIA_ROOT = tmp_path
    reference = f"SH-RACE-{timezone.now().timestamp():.0f}"
    with schema_context(world.acme.schema):
        shipment = shipment_create(customer_account=world.acme.customer_accounts[0], reference=reference, actor=SYSTEM)
    started = threading.Event()
    outcome: dict[str, Any] = {}

    def second() -> None:
        try:
            with schema_context(world.acme.schema), transaction.atomic():
                started.set()
                outcome["second"] = document_record(
                    kind="pod", content=b"%PDF race", original_name="b.pdf", shipment=shipment, actor=SYSTEM
                )
        finally:
            db.close()

    try:
        with schema_context(world.acme.schema):
            with transaction.atomic():
                first = document_record(kind="pod", content=b"%PDF race", original_name="a.pdf", shipment=shipment, actor=SYSTEM)
                thread = threading.Thread(target=second)
                thread.start()
                started.wait(10)
                time.sleep(0.5)  # the second has looked, found nothing committed, and waits on the index
            thread.join(20)
            assert first.created and not outcome["second"].created
            assert outcome["second"].document.pk == first.document.pk
            assert Document.objects.filter(shipment=shipment, kind="pod").count() == 1
    finally:
        with schema_context(world.acme.schema):
            Document.objects.filter(shipment__reference=reference).delete()
            shipment.delete()
