"""Make the audit table append-only in the database itself: UPDATE and DELETE are refused.

The refusing function lives once in public (created with the public schema's migration);
each schema's table gets its own trigger calling it, so no schema re-creates shared functions.
"""

from django.db import migrations

CREATE_FUNCTION = """
CREATE OR REPLACE FUNCTION public.baton_audit_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only: % on %.% refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""
CREATE_TRIGGER = """
CREATE TRIGGER governance_auditevent_append_only
BEFORE UPDATE OR DELETE ON governance_auditevent
FOR EACH ROW EXECUTE FUNCTION public.baton_audit_refuse_change();
"""


def forwards(apps, schema_editor):
    if schema_editor.connection.schema_name == "public":
        schema_editor.execute(CREATE_FUNCTION, params=None)
    schema_editor.execute(CREATE_TRIGGER)


def backwards(apps, schema_editor):
    schema_editor.execute("DROP TRIGGER IF EXISTS governance_auditevent_append_only ON governance_auditevent")


class Migration(migrations.Migration):
    dependencies = [("governance", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
