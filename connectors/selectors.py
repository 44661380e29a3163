"""Reads of a tenant's connections, for the pages and the API alike."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q, QuerySet

from connectors.auth import AUTH_SECRETS
from connectors.models import CircuitState, Connection
from connectors.services import ConnectionInput


def connections_list(*, query: str = "", kind: str = "", status: str = "") -> QuerySet[Connection]:
    """Connections by name; `query` matches the name, key or address, `status` is enabled or disabled."""
    connections = Connection.objects.all()
    if query := query.strip():
        connections = connections.filter(Q(name__icontains=query) | Q(key__icontains=query) | Q(base_url__icontains=query))
    if kind:
        connections = connections.filter(kind=kind)
    if status in ("enabled", "disabled"):
        connections = connections.filter(enabled=status == "enabled")
    return connections.order_by("name", "key")


def connections_exist() -> bool:
    return Connection.objects.exists()


def connection_by_key(*, key: str) -> Connection | None:
    return Connection.objects.filter(key=key).first()


@dataclass(frozen=True)
class ConnectionHealth:
    """What outbound calls have recorded: "no calls yet" until there are some."""

    calls: int
    failures: int
    last_success_at: datetime | None
    last_failure_at: datetime | None
    circuit_state: str
    circuit_opened_at: datetime | None

    @property
    def has_calls(self) -> bool:
        return self.calls > 0

    @property
    def error_rate(self) -> float | None:
        """Failed calls out of all calls, 0–1 (None before the first call)."""
        return self.failures / self.calls if self.calls else None

    @property
    def error_percent(self) -> str:
        rate = self.error_rate
        return "" if rate is None else f"{rate * 100:.1f}%".replace(".0%", "%")

    @property
    def circuit_open(self) -> bool:
        return self.circuit_state != CircuitState.CLOSED


def connection_health(connection: Connection) -> ConnectionHealth:
    return ConnectionHealth(
        calls=connection.calls_total,
        failures=connection.failures_total,
        last_success_at=connection.last_success_at,
        last_failure_at=connection.last_failure_at,
        circuit_state=connection.circuit_state,
        circuit_opened_at=connection.circuit_opened_at,
    )


def connection_input(connection: Connection) -> ConnectionInput:
    """The connection as a service input, with no secrets: saved unchanged, it keeps them all."""
    return ConnectionInput(
        key=connection.key,
        name=connection.name,
        kind=connection.kind,
        base_url=connection.base_url,
        transport=connection.transport,
        auth_method=connection.auth_method,
        health_path=connection.health_path,
        health_method=connection.health_method,
        connect_timeout=connection.connect_timeout,
        read_timeout=connection.read_timeout,
        settings=dict(connection.settings),
        auth_settings=dict(connection.auth_settings),
    )


def connection_secret_masks(connection: Connection) -> dict[str, str]:
    """Each secret field of the connection's auth method: its mask, or "" when none is stored."""
    return {name: connection.credential_masks.get(name, "") for name in AUTH_SECRETS.get(connection.auth_method, ())}
