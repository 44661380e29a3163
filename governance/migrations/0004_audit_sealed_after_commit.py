"""Seal audit rows after their transaction commits instead of linking them under a lock in it.

A row is written with an empty `previous_hash`, a placeholder `row_hash` and no `chain_seq`;
`governance.services.audit_seal` later sets all three, once. The append-only trigger allows
exactly that update, on the same id with every recorded field unchanged; any other UPDATE, and
every DELETE, is refused as before. Rows already in a chain get their places in id order, which
was their chain order.
"""

import importlib

from django.db import migrations, models

ALLOW_SEALING = """
CREATE OR REPLACE FUNCTION public.baton_audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.chain_seq IS NULL AND NEW.chain_seq IS NOT NULL
        AND OLD.previous_hash = '' AND NEW.previous_hash <> '' AND NEW.id = OLD.id
        AND (NEW.occurred_at, NEW.actor_email, NEW.actor_kind, NEW.action, NEW.target_type, NEW.target_id,
             NEW.target_label, NEW.tenant_slug, NEW.reason, NEW.data, NEW.request_id)
        IS NOT DISTINCT FROM
            (OLD.occurred_at, OLD.actor_email, OLD.actor_kind, OLD.action, OLD.target_type, OLD.target_id,
             OLD.target_label, OLD.tenant_slug, OLD.reason, OLD.data, OLD.request_id)
    THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION 'audit log is append-only: % on %.% refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""
PLACES_IN_ID_ORDER = """
ALTER TABLE governance_auditevent DISABLE TRIGGER governance_auditevent_append_only;
UPDATE governance_auditevent AS audit SET chain_seq = placed.seq
    FROM (SELECT id, row_number() OVER (ORDER BY id) AS seq FROM governance_auditevent WHERE previous_hash <> '') AS placed
    WHERE audit.id = placed.id;
ALTER TABLE governance_auditevent ENABLE TRIGGER governance_auditevent_append_only;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.schema_name == "public":  # the function is shared; tenants' triggers call it
        schema_editor.execute(ALLOW_SEALING, params=None)
    schema_editor.execute(PLACES_IN_ID_ORDER, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.schema_name == "public":
        previous = importlib.import_module("governance.migrations.0003_audit_link_pending")
        schema_editor.execute(previous.ALLOW_LINKING, params=None)


class Migration(migrations.Migration):
    dependencies = [("governance", "0003_audit_link_pending")]
    operations = [
        migrations.AddField(
            model_name="auditevent",
            name="chain_seq",
            field=models.BigIntegerField(editable=False, null=True, unique=True),
        ),
        migrations.AddIndex(
            model_name="auditevent",
            index=models.Index(condition=models.Q(("chain_seq__isnull", True)), fields=["id"], name="governance_audit_unsealed"),
        ),
        migrations.RunPython(forwards, backwards),
    ]
