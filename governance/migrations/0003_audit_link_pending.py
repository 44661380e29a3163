"""Let a row written inside `governance.services.audit_deferred` be linked into the chain once.

Such a row is written with an empty `previous_hash` and a placeholder hash, and gets its link and
its place (a new id) at the end of its block, in the same transaction. The append-only trigger
allows exactly that update: from an empty `previous_hash` to a set one, with every recorded field
unchanged. Any other UPDATE, and every DELETE, is refused as before.
"""

from django.db import migrations

ALLOW_LINKING = """
CREATE OR REPLACE FUNCTION public.baton_audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND OLD.previous_hash = '' AND NEW.previous_hash <> ''
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
REFUSE_ALL = """
CREATE OR REPLACE FUNCTION public.baton_audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only: % on %.% refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.schema_name == "public":  # the function is shared; tenants' triggers call it
        schema_editor.execute(ALLOW_LINKING, params=None)


def backwards(apps, schema_editor):
    if schema_editor.connection.schema_name == "public":
        schema_editor.execute(REFUSE_ALL, params=None)


class Migration(migrations.Migration):
    dependencies = [("governance", "0002_audit_append_only")]
    operations = [migrations.RunPython(forwards, backwards)]
