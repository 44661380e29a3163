"""Production refuses development defaults, naming the variable to set."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SAFE = {
    "DJANGO_ENV": "production",
    "DEBUG": "0",
    "SECRET_KEY": "k3y-for-tests-" + "".join(chr(65 + i % 26) + str(i) for i in range(30)),
    "ALLOWED_HOSTS": ".baton.example.com",
    "BATON_ENCRYPTION_KEYS": "cHJvZHVjdGlvbi1rZXktZm9yLXRlc3RzLW9ubHktMzI=",
    "BATON_METRICS_TOKEN": "metrics-token",
    "DATABASE_URL": "postgresql://baton@db.invalid/baton",
    "REDIS_URL": "redis://redis.invalid:6379/0",
}


def _check(**overrides) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in SAFE and k != "BATON_EMBEDDED_SERVICES"}
    env.update(SAFE)
    env.update(overrides)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production_with_safe_settings_passes_check_deploy():
    result = _check()
    assert result.returncode == 0, result.stderr + result.stdout


def test_production_refuses_each_unsafe_default_naming_its_variable():
    cases = {
        "DEBUG": ({"DEBUG": "1"}, "set DEBUG=0"),
        "SECRET_KEY": ({"SECRET_KEY": ""}, "set SECRET_KEY"),
        "embedded": ({"BATON_EMBEDDED_SERVICES": "1"}, "set DATABASE_URL and REDIS_URL"),
        "ALLOWED_HOSTS": ({"ALLOWED_HOSTS": ""}, "set ALLOWED_HOSTS"),
    }
    for name, (overrides, message) in cases.items():
        result = _check(**overrides)
        assert result.returncode != 0, name
        assert "Refusing to start with DJANGO_ENV=production" in result.stderr, name
        assert message in result.stderr, (name, result.stderr[-500:])
