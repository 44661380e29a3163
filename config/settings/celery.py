"""Celery: Redis (or RabbitMQ) only wakes workers; PostgreSQL holds the truth. No-loss settings."""

from celery.schedules import crontab

from config.embedded import celery_broker_url
from config.env import env_float, env_int, env_str

from .base import REDIS_URL

CELERY_BROKER_URL = celery_broker_url(env_str("CELERY_BROKER_URL", REDIS_URL))
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# A task is acknowledged only after it ran, and given back if its worker dies mid-way.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ACKS_ON_FAILURE_OR_TIMEOUT = True
# The longest task is bounded well below the visibility timeout, so a running task is never
# handed to a second worker; unacked messages of a dead worker are restored on every sweep
# (kombu's default only scans every 10th sweep, about 100 s).
CELERY_TASK_TIME_LIMIT = 15 * 60
CELERY_TASK_SOFT_TIME_LIMIT = 14 * 60
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, int | str] = {
    "visibility_timeout": env_int("BATON_BROKER_VISIBILITY_TIMEOUT", 60 * 60),
    "unacked_restore_interval": env_int("BATON_BROKER_RESTORE_INTERVAL", 10),
    "unacked_restore_throttle": 1,
}
# Keeps the test suite's queues apart from a `make run` sharing the same Redis.
if env_str("BATON_CELERY_KEY_PREFIX"):
    CELERY_BROKER_TRANSPORT_OPTIONS["global_keyprefix"] = env_str("BATON_CELERY_KEY_PREFIX")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Celery's Django integration closes the database connection after every task unless told to
# reuse it: a new PostgreSQL session per task (about 9 ms here) would cost more than most tasks.
CELERY_DB_REUSE_MAX = env_int("BATON_CELERY_DB_REUSE_MAX", 1000)
# A task running when the broker connection drops finishes (its work is idempotent; it is
# redelivered if it could not be acknowledged). Pinned: Celery 6 changes the default.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    # Exact names win over patterns: mail and housekeeping stay off the engine queue.
    "workflows.approval_announce": {"queue": "default"},
    "workflows.notify_email": {"queue": "default"},
    "workflows.dispatch_purge": {"queue": "default"},
    "workflows.purge_runs": {"queue": "default"},
    "workflows.*": {"queue": "engine"},
    "connectors.*": {"queue": "connectors"},
    "governance.reports.*": {"queue": "documents"},
    "billing.documents.*": {"queue": "documents"},
}
CELERY_BEAT_SCHEDULE = {
    "tenants-archive-sweep": {"task": "tenants.archive_sweep", "schedule": 60 * 60},
    # Audit rows a writer's commit left unsealed (it died in between), in every schema.
    "governance-audit-seal": {"task": "governance.audit_seal_all", "schedule": 60},
    "tenants-dispatch-heartbeat": {"task": "tenants.dispatch_tenant_heartbeat", "schedule": 60},
    # Durable timers (retries, waits) and the reaper, per ready tenant.
    "workflows-fire-timers": {"task": "workflows.dispatch_fire_timers", "schedule": 5},
    # Schedule triggers, per ready tenant; cursors make the second pass in a minute a no-op.
    "workflows-fire-schedules": {"task": "workflows.dispatch_schedules", "schedule": 30},
    # Retention: whole runs, then payloads, past each ready tenant's retention periods; daily.
    "workflows-purge-runs": {"task": "workflows.dispatch_purge", "schedule": crontab(hour=3, minute=17)},
    # The inbox's sweeper: dispatches left behind (a lost task, a broker outage), per ready tenant.
    "connectors-dispatch-sweep": {"task": "connectors.dispatch_sweep_all", "schedule": 30},
    # The outbound log past BATON_CONNECTOR_EXCHANGE_DAYS, per ready tenant; daily.
    "connectors-exchanges-purge": {"task": "connectors.exchanges_purge_all", "schedule": crontab(hour=3, minute=41)},
    # Customer webhook deliveries whose (re)try time has come, per ready tenant.
    "connectors-deliveries-due": {"task": "connectors.deliveries_due_all", "schedule": 10},
    # SFTP EDI partners: take inbound files, write pending 997s, per ready tenant.
    "connectors-edi-poll": {"task": "connectors.edi_poll_all", "schedule": 60},
    # Pickup appointments that ended without a pickup become delays (logistics.tracking_inbound), per ready tenant.
    "logistics-pickups-missed": {"task": "logistics.pickups_missed_scan_all", "schedule": 60},
}
# `make run` turns on sample traffic for the demo tenants: a milestone run and an order release per
# tenant every 15 s, and every 5 s the sandbox carrier's signed webhooks, 214s and reefer readings
# (connectors.demo, whose tasks the worker then imports).
if env_str("BATON_DEMO_TRAFFIC") in {"1", "true", "yes"}:
    CELERY_BEAT_SCHEDULE["workflows-demo-traffic"] = {"task": "workflows.demo_traffic", "schedule": 15}
    CELERY_BEAT_SCHEDULE["connectors-demo-traffic"] = {"task": "connectors.demo_traffic_all", "schedule": 5}
    CELERY_IMPORTS = ["connectors.demo"]
# The workflow engine on the workers: how long a claimed run stays a worker's before the reaper
# may hand it to another (a killed worker's runs resume after this), and where connector steps
# call (a loopback fake partner for tests and bench until real connectors land; empty: the
# in-process fake).
BATON_ENGINE_LEASE_SECONDS = env_int("BATON_ENGINE_LEASE_SECONDS", 60)
# Runs one `workflows.advance` claims and advances together (one transaction per round of steps):
# the larger the batch, the fewer rounds, commits and wake-ups per run (bench/results/engine.json).
BATON_ENGINE_BATCH = env_int("BATON_ENGINE_BATCH", 200)
# How long one `workflows.advance` goes on with its batch's rounds before it gives the rest back
# (still ready, for the next advance): rounds of heavy steps – an invoice PDF each – would otherwise
# hold a worker for half a minute while other tenants' runs and tasks wait.
BATON_ENGINE_ADVANCE_SECONDS = env_float("BATON_ENGINE_ADVANCE_SECONDS", 1.0)
# Heavy steps (an invoice PDF, `workflows.actions.Action.heavy`) one `workflows.advance` executes;
# the others stay ready for the next advance, so no advance holds a worker for long while the
# inbox's dispatches wait (bench/results/domain.json).
BATON_ENGINE_HEAVY_PER_ADVANCE = env_int("BATON_ENGINE_HEAVY_PER_ADVANCE", 16)
# Threads a worker process runs heavy steps on. One: a render is mostly Python, so more threads add
# no speed and hold the interpreter lock the process's other threads need (bench/results/domain.json).
BATON_ENGINE_HEAVY_CALLS = env_int("BATON_ENGINE_HEAVY_CALLS", 1)
# Connector calls a worker process makes at once for one round (a round waits for its slowest call).
BATON_ENGINE_CONNECTOR_CALLS = env_int("BATON_ENGINE_CONNECTOR_CALLS", 16)
BATON_CONNECTOR_HTTP_URL = env_str("BATON_CONNECTOR_HTTP_URL", "")
# Inbound events one `connectors.dispatch_ready` hands on in one transaction (bench/results/ingest.json).
BATON_INBOX_BATCH = env_int("BATON_INBOX_BATCH", 100)
# An inbound event whose body is larger is handed on in a batch of its own: a 214 file of a
# thousand events (170 KB), so the delays it carries wait for its events only.
BATON_INBOX_LARGE_BYTES = env_int("BATON_INBOX_LARGE_BYTES", 65536)
# How long one `connectors.dispatch_ready` goes on with batch after batch while events wait. A
# worker takes its queues in turns, so a dispatcher that sent itself again after every batch got
# one batch per engine advance and fell half a minute behind a busy day (bench/results/domain.json).
BATON_INBOX_DISPATCH_SECONDS = env_float("BATON_INBOX_DISPATCH_SECONDS", 5.0)
# How long the dispatcher a webhook wakes waits before it claims, so a burst is handed on in one
# batch rather than an event per task (a little latency for a lot less work per event).
BATON_INBOX_GATHER_SECONDS = env_float("BATON_INBOX_GATHER_SECONDS", 0.2)
# The MQTT telemetry listener's client ids are <prefix>-<schema>-<connection id>: give each
# installation sharing a broker its own prefix.
BATON_MQTT_CLIENT_PREFIX = env_str("BATON_MQTT_CLIENT_PREFIX", "baton")
# Per connection, shared by every process (connectors.guards): consecutive failures that open its
# circuit, how long it stays open before a probe, and a rate limit (calls/s, 0: none; burst).
BATON_CONNECTOR_CIRCUIT_FAILURES = env_int("BATON_CONNECTOR_CIRCUIT_FAILURES", 5)
BATON_CONNECTOR_CIRCUIT_OPEN_SECONDS = env_int("BATON_CONNECTOR_CIRCUIT_OPEN_SECONDS", 30)
BATON_CONNECTOR_RATE = env_float("BATON_CONNECTOR_RATE", 0.0)
BATON_CONNECTOR_BURST = env_int("BATON_CONNECTOR_BURST", 10)
# Days the outbound log (connectors.ConnectorExchange: each call's redacted request and answer) is
# kept; beat's connectors.exchanges_purge_all deletes older rows daily.
BATON_CONNECTOR_EXCHANGE_DAYS = env_int("BATON_CONNECTOR_EXCHANGE_DAYS", 14)
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
