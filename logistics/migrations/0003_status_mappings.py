"""Status mapping versions are immutable once published, in the database itself; and every
tenant starts with the platform's default tables (logistics/data) as its active version 1.

The guard functions live once in public (tenant migrations create them if missing, under an
advisory lock so concurrent schema migrations do not collide); each schema's tables get their own
triggers calling them. They read the version table of the schema that fired them.
"""

from django.db import migrations
from django.utils import timezone

FUNCTIONS = r"""
CREATE OR REPLACE FUNCTION public.baton_mapping_entry_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    version_status text;
BEGIN
    IF TG_OP <> 'INSERT' THEN
        EXECUTE format('SELECT status FROM %I.logistics_statusmappingversion WHERE id = $1', TG_TABLE_SCHEMA)
            INTO version_status USING OLD.version_id;
        IF version_status IS NOT NULL AND version_status <> 'draft' THEN
            RAISE EXCEPTION 'status mapping version % is published: its entries are immutable (% refused)', OLD.version_id, TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    END IF;
    IF TG_OP <> 'DELETE' THEN
        EXECUTE format('SELECT status FROM %I.logistics_statusmappingversion WHERE id = $1', TG_TABLE_SCHEMA)
            INTO version_status USING NEW.version_id;
        IF version_status IS NOT NULL AND version_status <> 'draft' THEN
            RAISE EXCEPTION 'status mapping version % is published: its entries are immutable (% refused)', NEW.version_id, TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END IF;
        RETURN NEW;
    END IF;
    RETURN OLD;
END;
$$;

CREATE OR REPLACE FUNCTION public.baton_mapping_version_guard() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status = 'draft' THEN
        IF TG_OP = 'DELETE' THEN RETURN OLD; END IF;
        RETURN NEW;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'status mapping version % is published: it cannot be deleted', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    -- A published version only moves between active and retired.
    IF NEW.status = 'draft'
       OR (NEW.kind, NEW.number, NEW.based_on_id, NEW.platform_release, NEW.notes, NEW.created_by_email,
           NEW.created_at, NEW.published_by_email, NEW.published_at)
          IS DISTINCT FROM
          (OLD.kind, OLD.number, OLD.based_on_id, OLD.platform_release, OLD.notes, OLD.created_by_email,
           OLD.created_at, OLD.published_by_email, OLD.published_at) THEN
        RAISE EXCEPTION 'status mapping version % is published: only its activation may change', OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END;
$$;
"""

TRIGGERS = """
CREATE TRIGGER logistics_statusmappingentry_guard
BEFORE INSERT OR UPDATE OR DELETE ON logistics_statusmappingentry
FOR EACH ROW EXECUTE FUNCTION public.baton_mapping_entry_guard();
CREATE TRIGGER logistics_statusmappingversion_guard
BEFORE UPDATE OR DELETE ON logistics_statusmappingversion
FOR EACH ROW EXECUTE FUNCTION public.baton_mapping_version_guard();
"""


def guards_create(apps, schema_editor):
    schema_editor.execute("SELECT pg_advisory_xact_lock(hashtext('baton:logistics:functions'))")
    schema_editor.execute(FUNCTIONS, params=None)
    schema_editor.execute(TRIGGERS)


def guards_drop(apps, schema_editor):
    schema_editor.execute("DROP TRIGGER IF EXISTS logistics_statusmappingentry_guard ON logistics_statusmappingentry")
    schema_editor.execute("DROP TRIGGER IF EXISTS logistics_statusmappingversion_guard ON logistics_statusmappingversion")


def defaults_seed(apps, schema_editor):
    from logistics.mapping_defaults import defaults_install

    defaults_install(apps.get_model("logistics", "StatusMappingVersion"), apps.get_model("logistics", "StatusMappingEntry"), now=timezone.now())


class Migration(migrations.Migration):
    dependencies = [("logistics", "0002_domain")]
    operations = [
        migrations.RunPython(guards_create, guards_drop),
        migrations.RunPython(defaults_seed, migrations.RunPython.noop),
    ]
