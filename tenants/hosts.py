"""The domain row (with its tenant and branding) behind a request's host, kept per process for a
moment, so a stream of requests – webhooks above all – does not look the host up in the public
schema for every one (a query and a search_path switch each: a quarter of a webhook's CPU).

Kept for BATON_TENANT_HOST_CACHE_SECONDS (0 turns it off; the test suite does, since it changes
tenants under running servers). The tenant services forget the kept rows in their process; in
other processes a suspension, a new domain or a new brand takes up to that long to show.
"""

from __future__ import annotations

import time

from django.conf import settings

from tenants.models import Domain

_kept: dict[str, tuple[float, Domain | None]] = {}


def host_domain(host: str) -> Domain | None:
    """The domain row for `host` with its tenant, branding and portal texts, or None for a host nobody has."""
    seconds = settings.BATON_TENANT_HOST_CACHE_SECONDS
    now = time.monotonic()
    kept = _kept.get(host) if seconds > 0 else None
    if kept is not None and now - kept[0] < seconds:
        return kept[1]
    domain = Domain.objects.select_related("tenant", "tenant__branding", "tenant__portal_texts").filter(domain=host).first()
    if seconds > 0:
        if len(_kept) > 10_000:  # hosts nobody has, probed one after another
            _kept.clear()
        _kept[host] = (now, domain)
    return domain


def tenant_hosts_forget() -> None:
    """After a change to a tenant, its domains or its brand in this process."""
    _kept.clear()
