"""Core Django settings: paths, database, cache, templates, static files, email."""

from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from config.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("BATON_VAR_DIR", str(BASE_DIR / "var")))

DJANGO_ENV = env_str("DJANGO_ENV", "development")
DEVELOPMENT_SECRET_KEY = "baton-development-only-secret-key-do-not-use-in-production"
SECRET_KEY = env_str("SECRET_KEY", DEVELOPMENT_SECRET_KEY)
DEBUG = env_bool("DEBUG", DJANGO_ENV == "development")
# Tenants bring custom domains at run time, so the real host check is TenantHostMiddleware:
# console hosts and known tenant Domains are served, any other host gets a 404 before any view.
# Development therefore accepts any Host header; production must say what it expects.
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if DJANGO_ENV == "production" else "*")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# Embedded PostgreSQL/Redis are started by deploy/local when these are unset; settings only
# record whether that happened so production can refuse it.
EMBEDDED_SERVICES = env_bool("BATON_EMBEDDED_SERVICES", False)
DATABASE_URL = env_str("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/baton")
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")

DATABASES: dict[str, dict] = {
    "default": {
        **dj_database_url.parse(DATABASE_URL, conn_max_age=env_int("DATABASE_CONN_MAX_AGE", 60)),
        "ENGINE": "tenants.postgresql_backend",
    }
}
# A worker or web process started by the test suite points at the suite's database by name.
if env_str("DATABASE_NAME"):
    DATABASES["default"]["NAME"] = env_str("DATABASE_NAME")
DATABASES["default"].setdefault("TEST", {})["NAME"] = env_str("DATABASE_TEST_NAME", "test_baton")
DATABASE_ROUTERS = ("workflows.routers.LibraryInPublicRouter", "django_tenants.routers.TenantSyncRouter")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Every key carries the schema, so one tenant's cache is never read on another's host.
        "KEY_FUNCTION": "django_tenants.cache.make_key",
        # Lets the test suite share a Redis with `make run` without reading its keys.
        "KEY_PREFIX": env_str("BATON_CACHE_KEY_PREFIX", ""),
        "REVERSE_KEY_FUNCTION": "django_tenants.cache.reverse_key",
    }
}

MIDDLEWARE = [
    "config.observability.RequestIdMiddleware",
    "tenants.middleware.TenantHostMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication: a signed-in person's chosen language beats the cookie and Accept-Language
    # that LocaleMiddleware (above, after sessions) went by.
    "accounts.middleware.UserLanguageMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.SupportSessionMiddleware",
    "accounts.middleware.MfaRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "config.observability.RequestLogMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "tenants.context_processors.brand",
            ],
        },
    }
]

WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

LANGUAGE_CODE = "en-us"
# The languages people can choose (accounts.User.language, the user menu); catalogs in locale/,
# refreshed with `make messages` and compiled by `make install`.
LANGUAGES = [("en", "English"), ("de", "Deutsch"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if DJANGO_ENV == "production"
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
MEDIA_ROOT = Path(env_str("MEDIA_ROOT", str(VAR_DIR / "media")))
MEDIA_URL = "/media/"
WHITENOISE_USE_FINDERS = DJANGO_ENV != "production"

EMAIL_BACKEND = env_str(
    "EMAIL_BACKEND",
    "django.core.mail.backends.filebased.EmailBackend" if DJANGO_ENV == "development" else "django.core.mail.backends.smtp.EmailBackend",
)
EMAIL_FILE_PATH = VAR_DIR / "mail"
EMAIL_HOST = env_str("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "Baton <no-reply@baton.localhost>")
ANYMAIL = {"IGNORE_UNSUPPORTED_FEATURES": True}

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("BEHIND_TLS_PROXY") else None

# Calls to tenants' connections refuse private, loopback and link-local addresses except these
# host names and CIDRs (connectors.safety). Development allows loopback, where the sandbox fakes run.
# A map under the shipment page's route: a tile server's URL template with {z}, {x} and {y}
# (e.g. http://tiles.internal/{z}/{x}/{y}.png) and the attribution its tiles require. Unset, the
# portal draws the schematic route only and loads nothing from outside.
BATON_MAP_TILE_URL = env_str("BATON_MAP_TILE_URL")
BATON_MAP_ATTRIBUTION = env_str("BATON_MAP_ATTRIBUTION")
if BATON_MAP_TILE_URL and not (
    BATON_MAP_TILE_URL.startswith(("http://", "https://")) and all(part in BATON_MAP_TILE_URL for part in ("{z}", "{x}", "{y}"))
):
    raise ImproperlyConfigured(f"BATON_MAP_TILE_URL must be an http(s) URL with {{z}}, {{x}} and {{y}}, not {BATON_MAP_TILE_URL!r}")

# The largest webhook body /hooks/<connection> takes (bytes); larger ones get a 413.
BATON_WEBHOOK_MAX_BYTES = env_int("BATON_WEBHOOK_MAX_BYTES", 1024 * 1024)
BATON_OUTBOUND_ALLOW = env_list("BATON_OUTBOUND_ALLOW", "127.0.0.0/8,::1,localhost" if DJANGO_ENV == "development" else "")
