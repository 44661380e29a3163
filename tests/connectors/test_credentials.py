"""Connection credentials at rest: encrypted with BATON_ENCRYPTION_KEYS (not SECRET_KEY), never
readable with the wrong key, re-encrypted by `rotate_keys`; and every tenant schema has the table."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.test import override_settings
from django_tenants.utils import schema_context

from config.encryption import SecretUnreadable, secret_decrypt
from connectors.auth import connection_secrets
from connectors.models import Connection
from connectors.services import connection_create, connection_test
from tenants.db import connection as db
from tests.connectors.test_connections import API_KEY, PASSWORD, connection_input

pytestmark = pytest.mark.django_db

OLD_KEY = "ZGV2ZWxvcG1lbnQtb25seS1rZXktZG8tbm90LXVzZTA="  # the development key the suite runs with
NEW_KEY = "cHJvZHVjdGlvbi1rZXktZm9yLXRlc3RzLW9ubHktMzI="
OTHER_KEY = "b3RoZXIta2V5LW5vYm9keS1rbm93cy1hYm91dC0zMjE="


def _create(world, tenant_world, key: str, **fields) -> Connection:
    with schema_context(tenant_world.schema):
        return connection_create(data=connection_input(key, "https://tms.example.com", **fields), actor=tenant_world.users["tenant_admin"])


def _raw_columns(schema: str, key: str) -> str:
    """The row as the database holds it: everything a stolen backup would show."""
    with db.cursor() as cursor:
        cursor.execute(f'SELECT row_to_json(c)::text FROM "{schema}".connectors_connection c WHERE key = %s', [key])
        return cursor.fetchone()[0]


def test_the_secret_is_not_in_the_database_row_only_its_mask(world):
    connection = _create(world, world.acme, "acme-at-rest", auth_method="api_key", secrets={"key": API_KEY})
    row = _raw_columns(world.acme.schema, "acme-at-rest")
    assert API_KEY not in row
    assert json.loads(row)["credential_masks"] == {"key": "••••" + API_KEY[-4:]}
    assert json.loads(secret_decrypt(connection.credentials)) == {"key": API_KEY}


def test_the_wrong_key_raises_and_never_hands_back_ciphertext(world):
    connection = _create(
        world, world.acme, "acme-wrong-key", auth_method="basic", auth_settings={"username": "acme"}, secrets={"password": PASSWORD}
    )
    with override_settings(BATON_ENCRYPTION_KEYS=[OTHER_KEY]):
        with pytest.raises(SecretUnreadable):
            connection_secrets(connection)
        with schema_context(world.acme.schema):
            result = connection_test(connection=connection, actor=world.acme.users["tenant_admin"])
    assert (result.ok, result.message) == (
        False,
        "The stored credentials cannot be decrypted with the keys in BATON_ENCRYPTION_KEYS: enter them again",
    )


def test_a_secret_key_change_does_not_touch_credentials(world):
    connection = _create(world, world.acme, "acme-secret-key", auth_method="api_key", secrets={"key": API_KEY})
    with override_settings(SECRET_KEY="another-secret-key-entirely-" + "x" * 40):
        assert connection_secrets(connection) == {"key": API_KEY}


def test_rotate_keys_reencrypts_every_connection_in_every_tenant_so_the_old_key_can_go(world, capsys):
    _create(world, world.acme, "acme-rotate", auth_method="api_key", secrets={"key": API_KEY})
    _create(world, world.globex, "globex-rotate", auth_method="basic", auth_settings={"username": "globex"}, secrets={"password": PASSWORD})
    _create(world, world.globex, "globex-no-secret")
    before = {
        key: _raw_columns(schema, key) for schema, key in ((world.acme.schema, "acme-rotate"), (world.globex.schema, "globex-rotate"))
    }
    with override_settings(BATON_ENCRYPTION_KEYS=[NEW_KEY, OLD_KEY]):
        call_command("rotate_keys")
    output = capsys.readouterr().out
    assert f"{world.acme.schema}: " in output and "done:" in output
    with override_settings(BATON_ENCRYPTION_KEYS=[NEW_KEY]):  # the old key is gone
        for schema, key, secrets in (
            (world.acme.schema, "acme-rotate", {"key": API_KEY}),
            (world.globex.schema, "globex-rotate", {"password": PASSWORD}),
        ):
            with schema_context(schema):
                connection = Connection.objects.get(key=key)
                assert connection_secrets(connection) == secrets
                assert connection.credentials not in before[key]
            assert list(secrets.values())[0] not in _raw_columns(schema, key)
        with schema_context(world.globex.schema):
            assert Connection.objects.get(key="globex-no-secret").credentials == ""


def test_every_provisioned_tenant_schema_has_the_connections_table(world):
    """Tenants are cloned from the template snapshot, whose fingerprint covers this app's migrations."""
    with db.cursor() as cursor:
        cursor.execute(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'connectors_connection' ORDER BY table_schema"
        )
        schemas = {row[0] for row in cursor.fetchall()}
    assert {world.acme.schema, world.globex.schema} <= schemas
    assert "public" not in schemas
