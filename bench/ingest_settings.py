"""Baton's settings with the ingest bench's baseline view mounted on tenant hosts (only the bench
starts gunicorn, its workers and itself with DJANGO_SETTINGS_MODULE=bench.ingest_settings)."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.ingest_urls"
