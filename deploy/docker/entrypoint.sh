#!/usr/bin/env bash
# Baton's container entrypoint: one image, one process kind per container.
#
#   web        gunicorn (deploy/docker/gunicorn.conf.py) serving config.wsgi
#   worker     a Celery worker on $CELERY_QUEUES (default: default,engine,connectors,documents)
#   beat       the Celery scheduler (exactly one per installation)
#   mqtt       python manage.py mqtt_listen: the MQTT telemetry listener (exactly one per installation)
#   migrate    python manage.py baton_migrate (public, tenant template, every tenant)
#   manage     python manage.py <args>, e.g. `manage provision_tenant ...`
#   healthcheck  the Dockerfile's HEALTHCHECK: GET /healthz for web, nothing for the others
#
# Anything else is run as a command (`docker run IMAGE python -V`). Extra arguments after a
# subcommand go to the program it starts (`worker --concurrency 4`).
set -euo pipefail

APP_DIR=/app
[[ -d "$APP_DIR" ]] && cd "$APP_DIR"

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

healthcheck() {
  # PID 1 is tini, whose arguments still name the subcommand this container was started with.
  local role=web arg prev=""
  if [[ -r /proc/1/cmdline ]]; then
    while IFS= read -r -d '' arg; do
      if [[ "$prev" == */entrypoint.sh ]]; then role="$arg"; fi
      prev="$arg"
    done </proc/1/cmdline
  fi
  [[ "$role" == "web" ]] || exit 0
  # The console host (BATON_CONSOLE_HOSTS) answers /healthz; X-Forwarded-Proto keeps production's
  # HTTPS redirect from answering instead of the view.
  exec python -c '
import os, sys, urllib.request
url = "http://127.0.0.1:%s/healthz" % os.environ.get("PORT", "8000")
headers = {"Host": os.environ.get("HEALTHCHECK_HOST", "localhost"), "X-Forwarded-Proto": "https"}
try:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=4) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:
    print(f"healthcheck failed: {exc}", file=sys.stderr)
    sys.exit(1)
'
}

command="${1:-web}"
[[ $# -gt 0 ]] && shift

# Prometheus multiprocess mode: every process of this container writes its counters to files
# here, and /metrics (or a worker's BATON_WORKER_METRICS_LISTEN) adds them up. One directory per
# container (pids are only unique inside it), on the /tmp emptyDir; the long-running kinds start
# it empty, so a restarted container counts afresh, as a restarted process would.
export PROMETHEUS_MULTIPROC_DIR="${PROMETHEUS_MULTIPROC_DIR:-/tmp/prometheus}"
if [[ "$command" == web || "$command" == worker || "$command" == beat || "$command" == mqtt ]]; then
  rm -rf "$PROMETHEUS_MULTIPROC_DIR"
fi
mkdir -p "$PROMETHEUS_MULTIPROC_DIR"

case "$command" in
  web)
    exec gunicorn --config "$APP_DIR/deploy/docker/gunicorn.conf.py" config.wsgi:application "$@"
    ;;
  worker)
    exec celery -A config worker \
      --loglevel "${LOG_LEVEL:-INFO}" \
      --queues "${CELERY_QUEUES:-default,engine,connectors,documents}" \
      --concurrency "${CELERY_CONCURRENCY:-2}" \
      "$@"
    ;;
  beat)
    # The schedule file goes to /tmp: the root filesystem is read-only in Kubernetes.
    exec celery -A config beat \
      --loglevel "${LOG_LEVEL:-INFO}" \
      --schedule "${CELERY_BEAT_SCHEDULE_FILE:-/tmp/celerybeat-schedule}" \
      "$@"
    ;;
  mqtt)
    # Stops on SIGTERM (tini passes it on) after disconnecting from every broker.
    exec python manage.py mqtt_listen "$@"
    ;;
  migrate)
    exec python manage.py baton_migrate "$@"
    ;;
  manage)
    exec python manage.py "$@"
    ;;
  healthcheck)
    healthcheck
    ;;
  help | -h | --help)
    usage
    ;;
  *)
    exec "$command" "$@"
    ;;
esac
