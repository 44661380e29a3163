"""What stands between a connector step and a partner: a circuit breaker and a rate limit per
(tenant, connection), shared by every web and worker process through Redis.

Circuit breaker. Consecutive failures that say the partner is unwell (no connection, timeouts,
5xx) open the circuit after `failures_to_open`; while open, calls are refused at once with
`CircuitOpen` (a `ConnectorError` whose `retry_after` is the time left, so a step's retry timer
comes back when the partner may be well again). When the open period is over, one caller at a
time is let through as a probe (half-open): its success closes the circuit, its failure opens it
again for another period. A success while closed resets the count; a late answer from a call
admitted before the circuit opened does not close it.

Rate limit. A token bucket (`rate` calls per second, `burst` at once): a caller that would wait
no longer than `max_wait` gets its turn reserved and sleeps; a longer wait is refused with
`RateLimited` (`retry_after` = the wait) without taking a token.

Both read the time from Redis, so every process sees one clock. When Redis cannot be reached
both let calls through (logged): a broken guard must not stop the business.

The circuits that are not closed are also indexed in one sorted set, kept by the same scripts (no
extra round trip), so `/metrics` counts open and half-open circuits without visiting every
connection (`circuits_count`).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any

import redis
import structlog
from django.conf import settings

from workflows.engine import ConnectorError

log = structlog.get_logger("baton.connectors")

CLOSED, OPEN, HALF_OPEN, OPENED = "closed", "open", "half_open", "opened"
KEY_SECONDS = 7 * 24 * 3600  # guard state of a connection nobody calls any more goes away
HEALTH_ERROR_CHARS = 300


class CircuitOpen(ConnectorError):
    def __init__(self, message: str, retry_after: float):
        super().__init__(message, kind="CircuitOpen", retry_after=retry_after)


class RateLimited(ConnectorError):
    def __init__(self, message: str, retry_after: float):
        super().__init__(message, kind="RateLimited", retry_after=retry_after)


@dataclass(frozen=True)
class CircuitPolicy:
    failures_to_open: int = 5
    open_seconds: float = 30.0
    probe_seconds: float = 30.0  # how long a probe holds the half-open slot (at least its timeout)


@dataclass(frozen=True)
class CircuitState:
    state: str
    failures: int
    opened_at: float | None = None  # Unix seconds
    retry_at: float | None = None


@dataclass(frozen=True)
class RateLimit:
    rate: float  # calls per second; 0: unlimited
    burst: int = 1
    max_wait: float = 1.0


_clients: dict[int, redis.Redis] = {}
_clients_lock = threading.Lock()


def _redis() -> redis.Redis:
    """One client (and pool) per process, made again after a fork."""
    pid = os.getpid()
    with _clients_lock:
        client = _clients.get(pid)
        if client is None:
            client = _clients[pid] = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=1, socket_connect_timeout=1)
        return client


def _keys_prefix() -> str:
    return f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:connector"


def _key(kind: str, tenant: str, connection: str) -> str:
    return f"{_keys_prefix()}:{kind}:{tenant}:{connection}"


def _circuits_not_closed_key() -> str:
    """The index of circuits that are open or half-open: a sorted set of their keys (score: when
    each last opened), kept by the circuit scripts so metrics read only those circuits."""
    return f"{_keys_prefix()}:circuits-not-closed"


# Each script runs atomically in Redis; times are Redis's own (TIME), in seconds as text (a Lua
# number returned to the client would be truncated to an integer). The circuit scripts take the
# circuit's key first and the index of circuits not closed last (`KEYS[#KEYS]`): opening adds the
# circuit there, closing an open or half-open one removes it, in the same script.
_NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) + tonumber(t[2]) / 1000000 "

_ADMIT = (
    _NOW
    + """
local state = redis.call('HGET', KEYS[1], 'state')
if not state or state == 'closed' then return {'closed', '0'} end
local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_at'))
local open_seconds, probe_seconds = tonumber(ARGV[1]), tonumber(ARGV[2])
if now < opened + open_seconds then return {'open', tostring(opened + open_seconds - now)} end
local probe_until = tonumber(redis.call('HGET', KEYS[1], 'probe_until') or '0')
if now < probe_until then return {'open', tostring(probe_until - now)} end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'probe_until', tostring(now + probe_seconds))
return {'probe', '0'}
"""
)

_FAILED = (
    _NOW
    + """
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
if state == 'open' and ARGV[2] == '0' then return state end
if ARGV[2] == '1' or state == 'half_open' or failures >= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', tostring(now), 'probe_until', '0')
  redis.call('ZADD', KEYS[#KEYS], now, KEYS[1])
  return 'opened'
end
redis.call('HSET', KEYS[1], 'state', 'closed')
return 'closed'
"""
)

# Takes `_FAILED`'s arguments (the probe flag second), so `call_record` can prefix either.
_SUCCEEDED = """
local state = redis.call('HGET', KEYS[1], 'state')
if state == 'open' and ARGV[2] == '0' then return 'open' end
if state == 'half_open' and ARGV[2] == '0' then return 'half_open' end
redis.call('DEL', KEYS[1])
if state == 'open' or state == 'half_open' then redis.call('ZREM', KEYS[#KEYS], KEYS[1]) end
return 'closed'
"""

_TAKE = (
    _NOW
    + """
local rate, burst, max_wait = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens') or ARGV[2])
local at = tonumber(redis.call('HGET', KEYS[1], 'at') or tostring(now))
tokens = math.min(burst, tokens + math.max(0, now - at) * rate) - 1
local wait = 0
if tokens < 0 then wait = -tokens / rate end
if wait > max_wait then return {'0', tostring(wait)} end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[4]))
return {'1', tostring(wait)}
"""
)


# Prefixes of the circuit scripts for `call_record`: the call counted in the health hash (KEYS[2]).
_HEALTH_OK = """
local t0 = redis.call('TIME')
redis.call('HINCRBY', KEYS[2], 'calls', 1)
redis.call('HSET', KEYS[2], 'last_success_at', tostring(tonumber(t0[1]) + tonumber(t0[2]) / 1000000))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
"""
_HEALTH_FAILED = """
local t0 = redis.call('TIME')
redis.call('HINCRBY', KEYS[2], 'calls', 1)
redis.call('HINCRBY', KEYS[2], 'failures', 1)
redis.call('HSET', KEYS[2], 'last_failure_at', tostring(tonumber(t0[1]) + tonumber(t0[2]) / 1000000), 'last_error', ARGV[4])
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[5]))
"""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _script(source: str, keys: list[str], args: list[Any]) -> Any:
    return _redis().eval(source, len(keys), *keys, *args)


# A circuit this process saw closed is taken as closed for this long without asking Redis (the
# common case costs no round trip); another process opening it is noticed within this time, and
# this process's own failure that opens it, at once.
CLOSED_SEEN_SECONDS = 1.0
_closed_seen: dict[tuple[str, str], float] = {}


def circuit_admit(tenant: str, connection: str, policy: CircuitPolicy) -> bool:
    """Let a call through or raise CircuitOpen. True when the call is the half-open probe."""
    if _closed_seen.get((tenant, connection), 0.0) > time.monotonic():
        return False
    try:
        state, wait = _script(_ADMIT, [_key("circuit", tenant, connection)], [policy.open_seconds, policy.probe_seconds])
    except redis.RedisError as error:
        log.warning("circuit state unavailable; letting the call through", connection=connection, error=str(error))
        return False
    if state == b"closed":
        _closed_seen[(tenant, connection)] = time.monotonic() + CLOSED_SEEN_SECONDS
    if state == b"open":
        retry_after = float(wait)
        raise CircuitOpen(f"{connection} is failing: calls are paused for another {retry_after:.0f} s (circuit open)", retry_after)
    return state == b"probe"


def circuit_record(tenant: str, connection: str, policy: CircuitPolicy, *, ok: bool, probe: bool) -> str:
    """Count the call's outcome; returns the circuit's state after it, `opened` when this
    failure opened it (or reopened it after a probe)."""
    keys = [_key("circuit", tenant, connection), _circuits_not_closed_key()]
    try:
        state = _script(_SUCCEEDED if ok else _FAILED, keys, [policy.failures_to_open, "1" if probe else "0", KEY_SECONDS])
    except redis.RedisError as error:
        log.warning("circuit state not recorded", connection=connection, error=str(error))
        return CLOSED
    return _seen(tenant, connection, state.decode())


def _seen(tenant: str, connection: str, state: str) -> str:
    if state != CLOSED:
        _closed_seen.pop((tenant, connection), None)
    return state


def call_record(tenant: str, connection: str, policy: CircuitPolicy, *, circuit_ok: bool, probe: bool, error: str = "") -> str:
    """A call that reached (or tried to reach) the partner: its circuit (`circuit_ok`: the
    partner is well, as after a 4xx) and its health (`error`: the call failed) in one round trip.
    Returns the circuit's state as `circuit_record` does."""
    keys = [_key("circuit", tenant, connection), _key("health", tenant, connection), _circuits_not_closed_key()]
    health = _HEALTH_FAILED if error else _HEALTH_OK
    arguments = [policy.failures_to_open, "1" if probe else "0", KEY_SECONDS, error[:HEALTH_ERROR_CHARS], KEY_SECONDS * 4]
    try:
        state = _script(health + (_SUCCEEDED if circuit_ok else _FAILED), keys, arguments)
    except redis.RedisError as error_:
        log.warning("call outcome not recorded", connection=connection, error=str(error_))
        return CLOSED
    return _seen(tenant, connection, state.decode())


def circuit_state(tenant: str, connection: str, policy: CircuitPolicy) -> CircuitState:
    """What the circuit is now, for pages and metrics."""
    raw = {_text(key): _text(value) for key, value in _redis().hgetall(_key("circuit", tenant, connection)).items()}
    if not raw:
        return CircuitState(CLOSED, 0)
    opened_at = float(raw["opened_at"]) if raw.get("opened_at") else None
    retry_at = opened_at + policy.open_seconds if opened_at is not None and raw.get("state") == OPEN else None
    return CircuitState(raw.get("state", CLOSED), int(raw.get("failures", 0)), opened_at, retry_at)


# Counts the circuits in the index by state, dropping the ones that closed by expiring (their key
# gone); atomic, so a circuit that opens meanwhile is never dropped. Looks at ARGV[1] at the most,
# so a scrape never holds Redis for long, whatever an outage opened.
_NOT_CLOSED_COUNT = """
local open, half_open = 0, 0
for _, key in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1)) do
  local state = redis.call('HGET', key, 'state')
  if state == 'open' then open = open + 1
  elseif state == 'half_open' then half_open = half_open + 1
  else redis.call('ZREM', KEYS[1], key) end
end
return {open, half_open}
"""
CIRCUITS_COUNTED_MAX = 10_000


def circuits_count() -> dict[str, int]:
    """Circuits open and half-open over every tenant and connection (at most
    CIRCUITS_COUNTED_MAX), for `/metrics`: read from the index the circuit scripts keep, so it
    costs the circuits not closed, not the connections. Raises redis.RedisError without Redis."""
    opened, half_open = _script(_NOT_CLOSED_COUNT, [_circuits_not_closed_key()], [CIRCUITS_COUNTED_MAX])
    return {OPEN: int(opened), HALF_OPEN: int(half_open)}


def rate_take(tenant: str, connection: str, limit: RateLimit) -> float:
    """Take a turn: returns the seconds to wait before calling (the turn is reserved), or raises
    RateLimited when the wait would be over `limit.max_wait` (nothing reserved)."""
    if limit.rate <= 0:
        return 0.0
    try:
        granted, wait = _script(_TAKE, [_key("rate", tenant, connection)], [limit.rate, max(limit.burst, 1), limit.max_wait, KEY_SECONDS])
    except redis.RedisError as error:
        log.warning("rate limit unavailable; letting the call through", connection=connection, error=str(error))
        return 0.0
    if granted == b"0":
        retry_after = float(wait)
        raise RateLimited(f"{connection} allows {limit.rate:g} calls/s: the next turn is in {retry_after:.1f} s", retry_after)
    return float(wait)


@dataclass(frozen=True)
class Health:
    calls: int = 0
    failures: int = 0
    last_success_at: float | None = None
    last_failure_at: float | None = None
    last_error: str = ""


def connection_health(tenant: str, connection: str) -> Health:
    """Calls and failures (over the last four weeks of activity), the last success and failure."""
    raw = {_text(key): _text(value) for key, value in _redis().hgetall(_key("health", tenant, connection)).items()}
    return Health(
        calls=int(raw.get("calls", 0)),
        failures=int(raw.get("failures", 0)),
        last_success_at=float(raw["last_success_at"]) if raw.get("last_success_at") else None,
        last_failure_at=float(raw["last_failure_at"]) if raw.get("last_failure_at") else None,
        last_error=raw.get("last_error", ""),
    )


def guards_forget() -> int:
    """Forget every connection's circuit and rate-limit state under this installation's key
    prefix (tests; an operator's "start afresh"). Returns how many keys went."""
    _closed_seen.clear()
    client = _redis()
    keys = list(client.scan_iter(match=f"{_keys_prefix()}:*", count=1000))
    return int(client.delete(*keys)) if keys else 0


def rate_wait(tenant: str, connection: str, limit: RateLimit) -> None:
    """Take a turn and wait for it (or raise RateLimited)."""
    wait = rate_take(tenant, connection, limit)
    if wait > 0:
        time.sleep(wait)
