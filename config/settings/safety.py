"""Production refuses to start on development defaults; each refusal names the variable to set."""

from django.core.exceptions import ImproperlyConfigured


def production_problems(settings: dict) -> list[str]:
    problems = []
    if settings["DEBUG"]:
        problems.append("DEBUG is on: set DEBUG=0.")
    if settings["SECRET_KEY"] == settings["DEVELOPMENT_SECRET_KEY"] or len(settings["SECRET_KEY"]) < 50:
        problems.append("SECRET_KEY is the development default or shorter than 50 characters: set SECRET_KEY.")
    if settings["EMBEDDED_SERVICES"]:
        problems.append(
            "embedded PostgreSQL/Redis are in use: set DATABASE_URL and REDIS_URL to real servers (and unset BATON_EMBEDDED_SERVICES)."
        )
    if not settings["ALLOWED_HOSTS"]:
        problems.append("ALLOWED_HOSTS is empty: set ALLOWED_HOSTS (comma-separated, e.g. .baton.example.com).")
    if settings["DEVELOPMENT_ENCRYPTION_KEY"] in settings["BATON_ENCRYPTION_KEYS"]:
        problems.append("BATON_ENCRYPTION_KEYS holds the development key: set BATON_ENCRYPTION_KEYS.")
    if not settings.get("BATON_METRICS_TOKEN"):
        problems.append("BATON_METRICS_TOKEN is empty: set it so /metrics is not open.")
    return problems


def refuse_unsafe_production(settings: dict) -> None:
    if settings["DJANGO_ENV"] != "production":
        return
    problems = production_problems(settings)
    if problems:
        raise ImproperlyConfigured("Refusing to start with DJANGO_ENV=production:\n- " + "\n- ".join(problems))
    settings.update(
        SECURE_SSL_REDIRECT=True,
        SECURE_HSTS_SECONDS=31536000,
        SECURE_HSTS_INCLUDE_SUBDOMAINS=True,
        SECURE_HSTS_PRELOAD=True,
        SESSION_COOKIE_SECURE=True,
        CSRF_COOKIE_SECURE=True,
        SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
    )
