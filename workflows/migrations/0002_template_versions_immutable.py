"""Published template versions never change: the database refuses UPDATE and DELETE on them."""

from django.db import migrations

CREATE_FUNCTION = """
CREATE OR REPLACE FUNCTION public.baton_refuse_immutable_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%.% rows are immutable: % refused', TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""
CREATE_TRIGGER = """
CREATE TRIGGER workflows_templateversion_immutable
BEFORE UPDATE OR DELETE ON workflows_templateversion
FOR EACH ROW EXECUTE FUNCTION public.baton_refuse_immutable_change();
"""


def forwards(apps, schema_editor):
    # The library lives in public only (workflows.routers): a tenant schema has no
    # templateversion table, and an unqualified name there would reach public's.
    if schema_editor.connection.schema_name != "public":
        return
    schema_editor.execute(CREATE_FUNCTION, params=None)
    schema_editor.execute(CREATE_TRIGGER)


def backwards(apps, schema_editor):
    if schema_editor.connection.schema_name != "public":
        return
    schema_editor.execute("DROP TRIGGER IF EXISTS workflows_templateversion_immutable ON workflows_templateversion")


class Migration(migrations.Migration):
    dependencies = [("workflows", "0001_initial")]
    operations = [migrations.RunPython(forwards, backwards)]
