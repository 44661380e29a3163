"""Connections: saving them (validation, secrets kept or replaced, audit rows without secrets),
each auth method's headers, OAuth2 tokens (cached, refreshed on 401), the guard against
server-side request forgery, and what "Test connection" says – all against a fake partner with a
token endpoint on loopback."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
from django.core.cache import cache
from django.test import override_settings
from django_tenants.utils import schema_context

from connectors.auth import _token_cache_key, oauth2_token, request_headers
from connectors.models import Connection
from connectors.safety import OutboundRefused, guarded_session
from connectors.services import (
    ConnectionInput,
    ConnectionInvalid,
    connection_create,
    connection_disable,
    connection_enable,
    connection_problems,
    connection_test,
    connection_update,
)
from governance.models import AuditEvent
from tests.processes import free_port

pytestmark = pytest.mark.django_db

CLIENT_ID = "baton-client"
CLIENT_SECRET = "client-secret-7f3a9c2e1b"
API_KEY = "tms-api-key-5d8e2f71c4a9"
PASSWORD = "basic-password-93kd71"
HMAC_SECRET = "whsec-signing-2b7c9e41"


# ---------- the fake partner -------------------------------------------------------------------


@dataclass
class FakeSystem:
    """A partner API with an OAuth2 token endpoint, on loopback. Paths: /token (client
    credentials), /health, /protected (a bearer token it issued and did not revoke), /keyed
    (X-Api-Key; a wrong key is echoed back in the 401, as careless APIs do), /slow, /redirect,
    /missing, /broken. Every request is recorded."""

    url: str = ""
    expires_in: int = 3600
    delay: float = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)

    def paths(self, path: str) -> list[dict[str, Any]]:
        return [request for request in self.requests if request["path"] == path]


def _handler(system: FakeSystem) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path = self.path.split("?", 1)[0]
            system.requests.append({"path": path, "method": self.command, "headers": dict(self.headers), "body": body})
            if path == "/token":
                self._token(body)
            elif path == "/health":
                self._answer(200, {"status": "ok"})
            elif path == "/protected":
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                ok = token in system.issued and token not in system.revoked
                self._answer(200 if ok else 401, {"ok": ok})
            elif path == "/keyed":
                key = self.headers.get("X-Api-Key", "")
                self._answer(200, {"ok": True}) if key == API_KEY else self._answer(401, {"error": f"unknown key {key}"})
            elif path == "/slow":
                time.sleep(system.delay)
                self._answer(200, {"slow": True})
            elif path == "/redirect":
                self._answer(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
            elif path == "/broken":
                self._answer(503, {"error": "maintenance"})
            else:
                self._answer(404, {"error": "not found"})

        def _token(self, body: bytes) -> None:
            form = {name: values[0] for name, values in parse_qs(body.decode()).items()}
            client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
            header = self.headers.get("Authorization", "")
            if header.startswith("Basic "):
                client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            if (client_id, secret) != (CLIENT_ID, CLIENT_SECRET) or form.get("grant_type") != "client_credentials":
                self._answer(401, {"error": "invalid_client", "error_description": "Client authentication failed"})
                return
            token = f"token-{len(system.issued) + 1}"
            system.issued.append(token)
            self._answer(200, {"access_token": token, "token_type": "Bearer", "expires_in": system.expires_in})

        def do_GET(self) -> None:
            self._handle()

        def do_HEAD(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

    return Handler


@contextmanager
def fake_system(tls: ssl.SSLContext | None = None) -> Iterator[FakeSystem]:
    system = FakeSystem()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(system))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    server.daemon_threads = True
    system.url = f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield system
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def partner() -> Iterator[FakeSystem]:
    with fake_system() as system:
        yield system


# ---------- helpers ------------------------------------------------------------------------------


def connection_input(key: str, base_url: str, **fields: Any) -> ConnectionInput:
    return ConnectionInput(
        key=key, name=fields.pop("name", key.replace("-", " ").title()), kind=fields.pop("kind", "tms"), base_url=base_url, **fields
    )


def oauth2_input(key: str, partner: FakeSystem, **fields: Any) -> ConnectionInput:
    return connection_input(
        key,
        partner.url,
        kind="erp",
        auth_method="oauth2_client_credentials",
        auth_settings={"token_url": partner.url + "/token", "client_id": CLIENT_ID, **fields.pop("auth_settings", {})},
        secrets={"client_secret": CLIENT_SECRET},
        **fields,
    )


def create(world, data: ConnectionInput) -> Connection:
    with schema_context(world.acme.schema):
        return connection_create(data=data, actor=world.acme.users["tenant_admin"])


def outcome_of(world, connection: Connection) -> tuple[bool, str]:
    """Test connection as a planner; the result is also what the connection keeps."""
    with schema_context(world.acme.schema):
        result = connection_test(connection=connection, actor=world.acme.users["planner"])
        stored = Connection.objects.get(pk=connection.pk)
    assert (stored.last_test_ok, stored.last_test_message) == (result.ok, result.message)
    return result.ok, result.message


def problems(error: pytest.ExceptionInfo[ConnectionInvalid]) -> dict[str, str]:
    return {problem.pointer: problem.reason for problem in error.value.problems}


# ---------- saving -------------------------------------------------------------------------------


def test_a_new_connection_is_saved_with_its_secret_sealed_masked_and_audited_without_it(world):
    connection = create(
        world,
        connection_input(
            "acme-tms", "https://tms.example.com/api", auth_method="api_key", auth_settings={"header": ""}, secrets={"key": API_KEY}
        ),
    )
    assert connection.auth_settings == {"header": "X-Api-Key"}  # the default header
    assert connection.credential_masks == {"key": "••••" + API_KEY[-4:]}
    assert API_KEY not in connection.credentials
    with schema_context(world.acme.schema):
        event = AuditEvent.objects.get(action="connection.created", target_id=str(connection.pk))
    assert event.data["secrets_set"] == ["key"] and event.data["auth_method"] == "api_key"
    assert API_KEY not in json.dumps(event.data) and API_KEY[-4:] not in json.dumps(event.data)
    assert event.actor_email == world.acme.users["tenant_admin"].email


def test_an_sftp_connection_may_leave_the_password_to_an_ssh_key_but_https_basic_may_not(world):
    sftp = connection_input(
        "partner-sftp",
        "sftp://sftp.example.com:22",
        kind="edi_partner",
        transport="sftp",
        auth_method="basic",
        auth_settings={"username": "baton"},
    )
    assert "/auth/password" not in {problem.pointer for problem in connection_problems(sftp)}
    https = connection_input("partner-api", "https://api.example.com", auth_method="basic", auth_settings={"username": "baton"})
    assert {problem.pointer: problem.reason for problem in connection_problems(https)}["/auth/password"] == "is required"


def test_every_problem_comes_back_by_pointer_before_anything_is_saved(world):
    bad = connection_input(
        "Acme TMS",
        "https://user:pw@tms.example.com",
        transport="sftp",
        auth_method="oauth2_client_credentials",
        settings={"api_token": "abc"},
        connect_timeout=0,
    )
    with pytest.raises(ConnectionInvalid) as refused, schema_context(world.acme.schema):
        connection_create(data=bad, actor=world.acme.users["tenant_admin"])
    found = problems(refused)
    assert found["/key"].startswith("use lowercase letters")
    assert found["/base_url"] == "must be a sftp:// address with a host, like the example"
    assert found["/connect_timeout"] == "must be between 0.1 and 60 seconds"
    assert found["/settings/api_token"].startswith("looks like a secret")
    assert found["/auth/method"] == "oauth2_client_credentials does not work over sftp: use none, basic"
    with schema_context(world.acme.schema):
        assert not Connection.objects.filter(key="Acme TMS").exists()

    with pytest.raises(ConnectionInvalid) as refused:
        create(world, connection_input("acme-erp", "https://user:pw@erp.example.com", auth_method="oauth2_client_credentials"))
    assert problems(refused) == {
        "/base_url": "must not hold a user or password: put them in the auth fields, where they are encrypted",
        "/auth/client_secret": "is required",
        "/auth/token_url": "is required",
        "/auth/client_id": "is required",
    }


def test_a_key_is_unique_in_the_workspace_and_new_is_reserved(world):
    create(world, connection_input("acme-wms", "https://wms.example.com"))
    with pytest.raises(ConnectionInvalid) as refused:
        create(world, connection_input("acme-wms", "https://other.example.com"))
    assert problems(refused) == {"/key": "there is already a connection keyed 'acme-wms'"}
    with pytest.raises(ConnectionInvalid) as refused:
        create(world, connection_input("new", "https://other.example.com"))
    assert problems(refused) == {"/key": "'new' is reserved: choose another key"}


def test_an_edit_keeps_a_secret_left_blank_replaces_a_new_one_and_drops_one_of_an_old_method(world):
    connection = create(
        world,
        connection_input(
            "acme-carrier",
            "https://carrier.example.com",
            auth_method="basic",
            auth_settings={"username": "acme"},
            secrets={"password": PASSWORD},
        ),
    )
    sealed = connection.credentials
    admin = world.acme.users["tenant_admin"]
    with schema_context(world.acme.schema):
        kept = connection_update(
            connection=connection,
            data=connection_input(
                "acme-carrier", "https://carrier.example.com/v2", name="Carrier", auth_method="basic", auth_settings={"username": "acme"}
            ),
            actor=admin,
        )
        assert kept.credentials == sealed and kept.credential_masks == {"password": "••••" + PASSWORD[-4:]}
        changed = connection_update(
            connection=kept,
            data=connection_input(
                "acme-carrier",
                "https://carrier.example.com/v2",
                name="Carrier",
                auth_method="basic",
                auth_settings={"username": "acme"},
                secrets={"password": "a-brand-new-password"},
            ),
            actor=admin,
        )
        assert changed.credential_masks == {"password": "••••word"} and changed.credentials != sealed
        moved = connection_update(
            connection=changed,
            data=connection_input(
                "acme-carrier", "https://carrier.example.com/v2", name="Carrier", auth_method="api_key", secrets={"key": API_KEY}
            ),
            actor=admin,
        )
        assert moved.credential_masks == {"key": "••••" + API_KEY[-4:]}
        assert request_headers(moved, session=guarded_session()) == {"X-Api-Key": API_KEY}
        events = list(AuditEvent.objects.filter(action="connection.updated", target_id=str(connection.pk)).order_by("pk"))
    assert [event.data for event in events] == [
        {"changed": ["name", "base_url"], "secrets_changed": [], "secrets_removed": []},
        {"changed": [], "secrets_changed": ["password"], "secrets_removed": []},
        {"changed": ["auth_method", "auth_settings"], "secrets_changed": ["key"], "secrets_removed": ["password"]},
    ]
    assert all(PASSWORD not in json.dumps(event.data) and "a-brand-new-password" not in json.dumps(event.data) for event in events)


def test_a_mask_sent_back_as_a_secret_is_refused(world):
    connection = create(world, connection_input("acme-mask", "https://tms.example.com", auth_method="api_key", secrets={"key": API_KEY}))
    with pytest.raises(ConnectionInvalid) as refused, schema_context(world.acme.schema):
        connection_update(
            connection=connection,
            data=connection_input(
                "acme-mask", "https://tms.example.com", auth_method="api_key", secrets={"key": connection.credential_masks["key"]}
            ),
            actor=world.acme.users["tenant_admin"],
        )
    assert problems(refused) == {"/auth/key": "is the mask of a secret, not a secret: leave it out to keep the stored one"}


def test_disable_and_enable_are_audited_once_each(world):
    connection = create(world, connection_input("acme-crm", "https://crm.example.com"))
    admin = world.acme.users["tenant_admin"]
    with schema_context(world.acme.schema):
        connection_disable(connection=connection, actor=admin, reason="partner migrating")
        connection_disable(connection=connection, actor=admin)
        assert not Connection.objects.get(pk=connection.pk).enabled
        connection_enable(connection=connection, actor=admin)
        actions = list(
            AuditEvent.objects.filter(target_type="connectors.connection", target_id=str(connection.pk))
            .order_by("pk")
            .values_list("action", "reason")
        )
    assert actions == [("connection.created", ""), ("connection.disabled", "partner migrating"), ("connection.enabled", "")]


# ---------- auth methods -------------------------------------------------------------------------


def test_each_auth_method_becomes_its_headers(world):
    session = guarded_session()
    none = create(world, connection_input("plain", "https://a.example.com"))
    api_key = create(
        world,
        connection_input(
            "keyed",
            "https://a.example.com",
            auth_method="api_key",
            auth_settings={"header": "Ocp-Apim-Subscription-Key"},
            secrets={"key": API_KEY},
        ),
    )
    basic = create(
        world,
        connection_input(
            "basic", "https://a.example.com", auth_method="basic", auth_settings={"username": "acme"}, secrets={"password": PASSWORD}
        ),
    )
    signed = create(
        world,
        connection_input(
            "signed",
            "https://a.example.com",
            kind="customer_webhook",
            auth_method="hmac",
            auth_settings={"algorithm": "sha512"},
            secrets={"secret": HMAC_SECRET},
        ),
    )
    with schema_context(world.acme.schema):
        assert request_headers(none, session=session) == {}
        assert request_headers(api_key, session=session) == {"Ocp-Apim-Subscription-Key": API_KEY}
        assert request_headers(basic, session=session) == {
            "Authorization": "Basic " + base64.b64encode(f"acme:{PASSWORD}".encode()).decode()
        }
        body = b'{"shipment": "SH-1"}'
        signature = request_headers(signed, session=session, body=body)["X-Baton-Signature"]
    stamp, digest = (part.split("=", 1)[1] for part in signature.split(","))
    assert signature.startswith(f"t={stamp},sha512=")
    assert abs(int(stamp) - time.time()) < 5
    assert digest == hmac.new(HMAC_SECRET.encode(), stamp.encode() + b"." + body, hashlib.sha512).hexdigest()


def test_an_oauth2_token_is_fetched_once_cached_encrypted_and_fetched_again_shortly_before_it_expires(world, partner):
    partner.expires_in = 2  # kept for int(2 - 0.2) = 1 s
    connection = create(world, oauth2_input("acme-erp", partner, auth_settings={"scope": "orders:read", "audience": "https://erp"}))
    session = guarded_session()
    with schema_context(world.acme.schema):
        first = request_headers(connection, session=session)
        again = request_headers(connection, session=session)
        cached = cache.get(_token_cache_key(connection))
        assert first == again == {"Authorization": "Bearer token-1"}
        assert cached and "token-1" not in cached  # the cached token is encrypted too
        time.sleep(1.2)
        assert request_headers(connection, session=session) == {"Authorization": "Bearer token-2"}
    (token_request, _second) = partner.paths("/token")
    assert token_request["headers"]["Authorization"] == "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
    assert parse_qs(token_request["body"].decode()) == {
        "grant_type": ["client_credentials"],
        "scope": ["orders:read"],
        "audience": ["https://erp"],
    }


def test_a_changed_client_secret_never_reads_the_old_token(world, partner):
    connection = create(world, oauth2_input("acme-erp-2", partner))
    session = guarded_session()
    with schema_context(world.acme.schema):
        assert request_headers(connection, session=session) == {"Authorization": "Bearer token-1"}
        changed = connection_update(connection=connection, data=oauth2_input("acme-erp-2", partner), actor=world.acme.users["tenant_admin"])
        assert request_headers(changed, session=session) == {"Authorization": "Bearer token-2"}


def test_client_credentials_go_in_the_body_when_the_provider_wants_them_there(world, partner):
    connection = create(world, oauth2_input("acme-crm-body", partner, auth_settings={"client_auth": "body"}))
    with schema_context(world.acme.schema):
        assert oauth2_token(connection, session=guarded_session()) == "token-1"
    (token_request,) = partner.paths("/token")
    assert "Authorization" not in token_request["headers"]
    assert parse_qs(token_request["body"].decode())["client_secret"] == [CLIENT_SECRET]


def test_a_revoked_token_gets_one_fresh_token_and_one_more_try(world, partner):
    connection = create(world, oauth2_input("acme-erp-3", partner, health_path="/protected"))
    with schema_context(world.acme.schema):
        request_headers(connection, session=guarded_session())  # token-1, cached
    partner.revoked.add("token-1")
    ok, message = outcome_of(world, connection)
    assert ok, message
    assert message.startswith(f"Reached {partner.url}/protected in ") and message.endswith(" ms: HTTP 200 OK")
    assert [request["headers"]["Authorization"] for request in partner.paths("/protected")] == ["Bearer token-1", "Bearer token-2"]
    partner.revoked.add("token-2")
    partner.revoked.add("token-3")
    ok, message = outcome_of(world, connection)  # refreshed once, still refused: no loop
    assert not ok and message.endswith('but it refused the credentials: HTTP 401 Unauthorized: “{"ok": false}”')
    assert len(partner.paths("/protected")) == 4


# ---------- Test connection: what it says ---------------------------------------------------------


def test_test_connection_says_it_reached_the_partner_and_how_fast(world, partner):
    connection = create(world, connection_input("acme-ok", partner.url + "/", health_path="/health", health_method="HEAD"))
    ok, message = outcome_of(world, connection)
    assert ok
    assert message.startswith(f"Reached {partner.url}/health in ") and message.endswith(" ms: HTTP 200 OK")
    assert partner.requests[-1]["method"] == "HEAD"
    with schema_context(world.acme.schema):
        event = AuditEvent.objects.get(action="connection.tested", target_id=str(connection.pk))
    assert event.data == {"ok": True, "message": message} and event.actor_email == world.acme.users["planner"].email


def test_test_connection_names_the_token_endpoints_refusal(world, partner):
    data = oauth2_input("acme-erp-bad", partner)
    data.secrets = {"client_secret": "not-the-client-secret"}
    ok, message = outcome_of(world, create(world, data))
    assert (ok, message) == (
        False,
        "The token endpoint refused the client credentials: HTTP 401 invalid_client (Client authentication failed)",
    )


def test_test_connection_says_when_the_partner_refuses_the_key_without_repeating_the_key(world, partner):
    wrong = "wrong-key-1234567890"
    connection = create(
        world, connection_input("acme-keyed", partner.url, health_path="/keyed", auth_method="api_key", secrets={"key": wrong})
    )
    ok, message = outcome_of(world, connection)
    assert not ok
    assert message.endswith('but it refused the credentials: HTTP 401 Unauthorized: “{"error": "unknown key ••••7890"}”')
    assert wrong not in message


def test_test_connection_messages_for_redirects_missing_paths_and_failures(world, partner):
    for path, expected in (
        ("/redirect", "HTTP 302 Found, a redirect to http://169.254.169.254/latest/meta-data/. Redirects are not followed"),
        ("/missing", "but there is nothing at that address: HTTP 404 Not Found. Check the base URL and the health path"),
        ("/broken", 'but it failed: HTTP 503 Service Unavailable: “{"error": "maintenance"}”'),
    ):
        ok, message = outcome_of(world, create(world, connection_input(f"acme{path.replace('/', '-')}", partner.url, health_path=path)))
        assert not ok and expected in message, message
    assert [request["path"] for request in partner.requests] == ["/redirect", "/missing", "/broken"]  # nothing followed the redirect


def test_test_connection_says_connection_refused(world):
    ok, message = outcome_of(world, create(world, connection_input("acme-down", f"http://127.0.0.1:{free_port()}")))
    assert (ok, message) == (False, "Could not connect: connection refused")


def test_test_connection_says_when_it_timed_out(world, partner):
    partner.delay = 2
    connection = create(world, connection_input("acme-slow", partner.url, health_path="/slow", read_timeout=0.5))
    ok, message = outcome_of(world, connection)
    assert (ok, message) == (False, "Timed out after 0.5 s waiting for an answer")


def test_private_loopback_and_link_local_addresses_are_refused_before_any_call(world, partner):
    with override_settings(BATON_OUTBOUND_ALLOW=[]):
        for base_url, said in (
            (
                partner.url,
                "Refused: 127.0.0.1 is a loopback address: Baton does not call private, loopback or link-local addresses unless BATON_OUTBOUND_ALLOW lists them.",
            ),
            (partner.url.replace("127.0.0.1", "localhost"), "Refused: localhost resolves to "),
            ("http://169.254.169.254/latest/meta-data", "Refused: 169.254.169.254 is a link-local address"),
            ("https://10.20.30.40/api", "Refused: 10.20.30.40 is a private address"),
            ("http://[::1]:9/", "Refused: ::1 is a loopback address"),
            ("http://[::ffff:192.168.1.5]/", "Refused: ::ffff:192.168.1.5 is a private address"),
        ):
            ok, message = outcome_of(
                world, create(world, connection_input(f"ssrf-{len(partner.requests)}-{abs(hash(base_url)) % 10**6}", base_url))
            )
            assert not ok and message.startswith(said), message
    assert partner.requests == []
    with override_settings(BATON_OUTBOUND_ALLOW=["10.20.30.0/24"]):
        ok, message = outcome_of(world, create(world, connection_input("ssrf-allowed", "https://10.20.30.40:9/api", connect_timeout=0.2)))
    assert not message.startswith("Refused"), message  # allowed: it tried (and found nothing there)


def test_the_token_url_is_guarded_too(world, partner):
    data = oauth2_input("acme-erp-ssrf", partner)
    data.base_url = "https://erp.example.com"
    connection = create(world, data)
    with override_settings(BATON_OUTBOUND_ALLOW=["erp.example.com"]):
        with schema_context(world.acme.schema):
            from connectors.auth import TokenUnavailable

            with pytest.raises(TokenUnavailable) as refused:
                oauth2_token(connection, session=guarded_session())
    assert str(refused.value).startswith(f"Could not get a token from {partner.url}/token: refused: 127.0.0.1 is a loopback address")
    assert partner.requests == []


def test_a_socket_to_a_refused_address_is_closed_even_when_the_name_was_checked_earlier(partner):
    """DNS rebinding: the guard checks the address each socket really connected to."""
    with override_settings(BATON_OUTBOUND_ALLOW=[]), pytest.raises(OutboundRefused) as refused:
        guarded_session().get(partner.url + "/health", timeout=2)
    assert str(refused.value).startswith("127.0.0.1 is a loopback address")
    assert partner.requests == []


def test_test_connection_over_sftp_checks_that_the_server_accepts_a_connection(world):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    try:
        connection = create(
            world,
            connection_input(
                "acme-edi",
                f"sftp://127.0.0.1:{port}",
                kind="edi_partner",
                transport="sftp",
                auth_method="basic",
                auth_settings={"username": "acme"},
                secrets={"password": PASSWORD},
            ),
        )
        ok, message = outcome_of(world, connection)
    finally:
        listener.close()
    assert (
        ok
        and message.startswith(f"Reached 127.0.0.1:{port} in ")
        and message.endswith("ms (a TCP connection: Baton does not log in over SFTP yet)")
    )
    ok, message = outcome_of(world, connection)
    assert (ok, message) == (False, "Could not connect: connection refused")
    with override_settings(BATON_OUTBOUND_ALLOW=[]):
        ok, message = outcome_of(world, connection)
    assert not ok and message.startswith("Refused: 127.0.0.1 is a loopback address")


def _self_signed(directory: Path) -> ssl.SSLContext:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    (directory / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (directory / "key.pem").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "cert.pem", directory / "key.pem")
    return context


def test_test_connection_says_when_the_tls_certificate_is_not_trusted(world, tmp_path):
    with fake_system(tls=_self_signed(tmp_path)) as partner:
        ok, message = outcome_of(world, create(world, connection_input("acme-tls", partner.url, health_path="/health")))
    assert (ok, message) == (False, "TLS certificate not trusted: self-signed certificate")


def test_secrets_never_reach_the_logs(world, partner, caplog):
    connection = create(world, oauth2_input("acme-erp-logs", partner, health_path="/protected"))
    with caplog.at_level(logging.DEBUG):
        outcome_of(world, connection)
        with schema_context(world.acme.schema):
            connection_update(connection=connection, data=oauth2_input("acme-erp-logs", partner), actor=world.acme.users["tenant_admin"])
    assert "connection tested" in caplog.text
    assert CLIENT_SECRET not in caplog.text and "token-1" not in caplog.text


def test_an_edit_does_not_overwrite_what_a_test_recorded_meanwhile(world):
    connection = create(world, connection_input("acme-busy-edit", "https://tms.example.com"))
    with schema_context(world.acme.schema):
        Connection.objects.filter(pk=connection.pk).update(last_test_message="Reached it")
        connection_update(
            connection=connection, data=connection_input("acme-busy-edit", "https://tms.example.com/v2"), actor=world.acme.users["planner"]
        )
        stored = Connection.objects.get(pk=connection.pk)
    assert (stored.base_url, stored.last_test_message) == ("https://tms.example.com/v2", "Reached it")
