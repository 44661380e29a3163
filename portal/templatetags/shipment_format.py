"""Words and numbers for the shipment pages: durations as people say them, money localised."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from django import template
from django.utils import formats
from django.utils.translation import gettext as _

from portal.shipment_pages import ON_TIME_WITHIN, Lateness, duration_words, lateness

register = template.Library()


@register.filter
def translated(label: str) -> str:
    """A vocabulary label (a status, mode or document kind, marked with gettext_noop where it is
    defined) in the viewer's language; usable inside `blocktranslate with`, where a tag is not."""
    return _(label) if label else ""


@register.filter
def dwell_words(span: timedelta | None) -> str:
    return duration_words(span) if span is not None else ""


@register.filter
def eta_shift(span: timedelta | None) -> str:
    """How far an estimate moved the ETA: "2 h later", "30 min earlier"."""
    if span is None:
        return ""
    if span > timedelta(0):
        return _("%(span)s later") % {"span": duration_words(span)}
    if span < timedelta(0):
        return _("%(span)s earlier") % {"span": duration_words(span)}
    return _("unchanged")


@register.filter
def arrival_verdict(stop_view: Any) -> Lateness:
    """A stop's arrival against its appointment window: early before it opens, late after it
    closes, on time inside it (a quarter of an hour's grace either side)."""
    arrived = getattr(stop_view, "arrived_at", None)
    start, end = getattr(stop_view, "appointment_start", None), getattr(stop_view, "appointment_end", None)
    window = [moment for moment in (start, end) if moment is not None]
    if arrived is None or not window:
        return Lateness("", "muted")
    opens, closes = window[0].utc, window[-1].utc
    if arrived.utc < opens - ON_TIME_WITHIN:
        return Lateness(_("%(span)s early") % {"span": duration_words(opens - arrived.utc)}, "ok")
    if arrived.utc > closes + ON_TIME_WITHIN:
        late_by = arrived.utc - closes
        return Lateness(_("%(span)s late") % {"span": duration_words(late_by)}, lateness(late_by).tone)
    return Lateness(_("on time"), "ok")


@register.filter
def money(value: Any) -> str:
    """An amount with two decimals and the viewer's separators; text that is no number stays as it is."""
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    return formats.number_format(amount, 2, use_l10n=True, force_grouping=True)
