"""Which apps live in the public schema, which in every tenant schema, and how hosts map."""

from config.env import env_float, env_list, env_str

_BOTH = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "accounts",
    "governance",
    "workflows",
    "insights",
]

SHARED_APPS = [
    "django_tenants",
    "tenants",
    *_BOTH,
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "drf_spectacular",
    "django_htmx",
    "console",
    "billing",
]
TENANT_APPS = [
    *_BOTH,
    "logistics",
    "connectors",
    "portal",
]
INSTALLED_APPS = list(SHARED_APPS) + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
PUBLIC_SCHEMA_NAME = "public"
ROOT_URLCONF = "config.urls_tenant"
PUBLIC_SCHEMA_URLCONF = "config.urls_public"

# Hosts that serve the MSP console (public schema). Every other host must be a tenant Domain.
# How long a process keeps a host's tenant row (tenants/hosts.py): 0 looks it up for every request.
BATON_TENANT_HOST_CACHE_SECONDS = env_float("BATON_TENANT_HOST_CACHE_SECONDS", 2.0)
BATON_CONSOLE_HOSTS = env_list("BATON_CONSOLE_HOSTS", "localhost,127.0.0.1,testserver")
# The suffix under which new tenants get a default host: <slug>.<suffix>.
BATON_TENANT_DOMAIN_SUFFIX = env_str("BATON_TENANT_DOMAIN_SUFFIX", "localhost")
# Schema that holds the migrated template every tenant is cloned from.
BATON_TEMPLATE_SCHEMA = "_baton_template"
# How long an archived tenant's schema is kept (after its export) before it is dropped.
BATON_ARCHIVE_GRACE_DAYS = 30
# How links in emails reach this installation (behind TLS in production: https and no port).
BATON_PUBLIC_SCHEME = env_str("BATON_PUBLIC_SCHEME", "http")
BATON_PUBLIC_PORT = env_str("BATON_PUBLIC_PORT", "8000")
# Set the search_path once per connection and tenant switch, not before every query (a rollback,
# a savepoint rollback or a tenant switch makes django-tenants set it again; a switch back to the
# value the session holds sets nothing: `tenants.postgresql_backend`).
TENANT_LIMIT_SET_CALLS = True
