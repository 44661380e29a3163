"""What the customer portal's shipment pages keep and compute that is theirs alone: saved views
(a person's named filters of the list) and the schematic route drawn on the shipment page.

The shipments themselves are read through `logistics.shipment_reads`, which scopes them for the
viewer; nothing here queries shipments.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode

from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from governance.services import audit_record
from portal.models import SavedView

SAVED_VIEW_NAME_MAX = 80
SAVED_VIEW_QUERY_MAX = 1000
SAVED_VIEWS_PER_PERSON = 50
# Parameters that describe a page of the list rather than the filter: never saved.
NOT_SAVED = frozenset({"after", "before", "token", "csrfmiddlewaretoken", "name", "query"})


class SavedViewRefused(Exception):
    """A saved view that cannot be kept as asked; `field` names the form field at fault."""

    def __init__(self, message: str, *, field: str = "name"):
        super().__init__(message)
        self.message = message
        self.field = field


def saved_view_query(query: str) -> str:
    """The list's query string as a saved view keeps it: cursors and empty values dropped, the
    order of parameters as given."""
    pairs = [(key, value) for key, value in parse_qsl(query.lstrip("?"), keep_blank_values=False) if key not in NOT_SAVED and value.strip()]
    return urlencode(pairs)


def saved_views_of(owner: Any) -> QuerySet[SavedView]:
    return SavedView.objects.filter(owner=owner).order_by("name")


def saved_view_get(*, owner: Any, view_id: int) -> SavedView | None:
    """The owner's own view, or None: another person's id reads as not found."""
    return SavedView.objects.filter(owner=owner, pk=view_id).first()


def saved_view_save(*, owner: Any, name: str, query: str, actor: Any) -> tuple[SavedView, bool]:
    """Keep the list's current filter under a name; saving a name the person already uses
    replaces that view's filter. Returns the view and whether it is new."""
    name = " ".join(name.split())
    if not name:
        raise SavedViewRefused(_("Give the view a name, e.g. “Late reefer loads”."))
    if len(name) > SAVED_VIEW_NAME_MAX:
        raise SavedViewRefused(
            _("The name is %(count)d characters long; keep it to %(max)d.") % {"count": len(name), "max": SAVED_VIEW_NAME_MAX}
        )
    query = saved_view_query(query)
    if len(query) > SAVED_VIEW_QUERY_MAX:
        raise SavedViewRefused(_("This filter is too long to save; remove a few values and try again."), field="query")
    existing = SavedView.objects.filter(owner=owner, name=name).first()
    if existing is None and SavedView.objects.filter(owner=owner).count() >= SAVED_VIEWS_PER_PERSON:
        raise SavedViewRefused(
            _("You have %(max)d saved views, the most one person can keep: delete one you no longer use first.")
            % {"max": SAVED_VIEWS_PER_PERSON}
        )
    try:
        with transaction.atomic():
            if existing is None:
                view = SavedView.objects.create(owner=owner, name=name, query=query)
            else:
                existing.query = query
                existing.save(update_fields=["query", "updated_at"])
                view = existing
            audit_record(
                actor=actor, action="saved_view.saved", target=view, data={"name": name, "query": query, "replaced": existing is not None}
            )
    except IntegrityError:  # the same name saved twice at once: the other one is the view
        raise SavedViewRefused(
            _("A view named “%(name)s” was just saved; pick it from the list or use another name.") % {"name": name}
        ) from None
    return view, existing is None


def saved_view_delete(*, view: SavedView, actor: Any) -> None:
    with transaction.atomic():
        audit_record(actor=actor, action="saved_view.deleted", target=view, data={"name": view.name, "query": view.query})
        view.delete()


# --- lateness in words -------------------------------------------------------------------------


def duration_words(span: timedelta) -> str:
    """A duration the way a person says it on a status line: "2 h", "45 min", "3 d 4 h"."""
    minutes = int(abs(span).total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return _("%(days)d d %(hours)d h") % {"days": days, "hours": hours} if hours else _("%(days)d d") % {"days": days}
    if hours:
        return _("%(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes} if minutes else _("%(hours)d h") % {"hours": hours}
    return ngettext("%(minutes)d min", "%(minutes)d min", minutes) % {"minutes": minutes}


@dataclass(frozen=True)
class Lateness:
    """The ETA against the promise, for a badge: `tone` is ok / warn / danger / muted."""

    text: str
    tone: str


ON_TIME_WITHIN = timedelta(minutes=15)


def lateness(late_by: timedelta | None, *, delivered: bool = False) -> Lateness:
    if late_by is None:
        return Lateness(_("No promise to compare"), "muted")
    if abs(late_by) < ON_TIME_WITHIN:
        return Lateness(_("On time") if delivered else _("On schedule"), "ok")
    words = duration_words(late_by)
    if late_by > timedelta(0):
        text = _("Delivered %(span)s late") % {"span": words} if delivered else _("%(span)s late") % {"span": words}
        return Lateness(text, "danger" if late_by >= timedelta(hours=2) else "warn")
    return Lateness(_("Delivered %(span)s early") % {"span": words} if delivered else _("%(span)s early") % {"span": words}, "ok")


# --- the schematic route ---------------------------------------------------------------------


@dataclass(frozen=True)
class RoutePoint:
    label: str
    kind: str  # pickup, delivery, position
    x: float
    y: float
    reached: bool = False
    label_y: float = 0.0  # where its label goes: above the point, or below for every other stop


@dataclass(frozen=True)
class MapTile:
    """One map tile under the route, placed in percent of the box so the map scales with the page."""

    url: str
    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True)
class RouteSchematic:
    """A route drawn without map tiles: the stops as points on their coordinates (scaled into
    the box) or, without coordinates, evenly along a line; the last known position between them.
    With a configured tile server (`BATON_MAP_TILE_URL`) and coordinates, the same drawing lies on
    that server's Web Mercator tiles (`tiles`): the portal loads nothing from outside otherwise."""

    width: int
    height: int
    stops: list[RoutePoint]
    position: RoutePoint | None
    travelled: str  # SVG points of the line up to the position (or the last reached stop)
    planned: str  # SVG points of the whole line
    geographic: bool
    tiles: list[MapTile] = field(default_factory=list)


ROUTE_WIDTH, ROUTE_HEIGHT = 640, 200
MAP_HEIGHT = 320  # a map needs more height than the schematic line to be read
ROUTE_PAD_X, ROUTE_PAD_Y = 90, 40  # room for the labels beside and above or below the points
TILE_SIZE = 256
MAP_ZOOM_MAX = 15


def _mercator(latitude: float, longitude: float, zoom: int) -> tuple[float, float]:
    """Web Mercator pixel coordinates at `zoom` (256-pixel tiles), as tile servers cut them."""
    scale = TILE_SIZE * 2**zoom
    latitude = max(min(latitude, 85.0511), -85.0511)
    sine = math.sin(math.radians(latitude))
    return (longitude + 180.0) / 360.0 * scale, (0.5 - math.log((1 + sine) / (1 - sine)) / (4 * math.pi)) * scale


def _map_placed(coordinates: list[tuple[float, float]], tile_url: str) -> tuple[list[tuple[float, float]], list[MapTile]]:
    """The points in the map box at the highest zoom that fits them all, and the tiles under it."""
    zoom = 1
    for candidate in range(MAP_ZOOM_MAX, 0, -1):
        pixels = [_mercator(lat, lon, candidate) for lat, lon in coordinates]
        xs, ys = [x for x, _y in pixels], [y for _x, y in pixels]
        if max(xs) - min(xs) <= ROUTE_WIDTH - 2 * ROUTE_PAD_X and max(ys) - min(ys) <= MAP_HEIGHT - 2 * ROUTE_PAD_Y:
            zoom = candidate
            break
    pixels = [_mercator(lat, lon, zoom) for lat, lon in coordinates]
    xs, ys = [x for x, _y in pixels], [y for _x, y in pixels]
    shift_x = ROUTE_WIDTH / 2 - (max(xs) + min(xs)) / 2
    shift_y = MAP_HEIGHT / 2 - (max(ys) + min(ys)) / 2
    tiles = []
    count = 2**zoom
    for column in range(math.floor(-shift_x / TILE_SIZE), math.floor((ROUTE_WIDTH - shift_x) / TILE_SIZE) + 1):
        for row in range(math.floor(-shift_y / TILE_SIZE), math.floor((MAP_HEIGHT - shift_y) / TILE_SIZE) + 1):
            if not 0 <= row < count:
                continue
            tiles.append(
                MapTile(
                    url=tile_url.format(z=zoom, x=column % count, y=row),
                    left=round((column * TILE_SIZE + shift_x) / ROUTE_WIDTH * 100, 3),
                    top=round((row * TILE_SIZE + shift_y) / MAP_HEIGHT * 100, 3),
                    width=round(TILE_SIZE / ROUTE_WIDTH * 100, 3),
                    height=round(TILE_SIZE / MAP_HEIGHT * 100, 3),
                )
            )
    return [(x + shift_x, y + shift_y) for x, y in pixels], tiles


def _projected(latitude: float, longitude: float) -> tuple[float, float]:
    """Equirectangular, with the longitude squeezed by the cosine of the latitude: plenty for a
    schematic of one shipment's stops."""
    return longitude * math.cos(math.radians(latitude)), -latitude


def route_schematic(stops: Sequence[dict[str, Any]], position: dict[str, Any] | None, tile_url: str = "") -> RouteSchematic | None:
    """`stops`: dicts with label, kind, latitude, longitude (or None) and reached; `position`:
    latitude and longitude, or None; `tile_url`: a tile server's `{z}/{x}/{y}` template, or empty
    for no map. None when there is nothing to draw (fewer than two stops)."""
    if len(stops) < 2:
        return None
    located = all(stop.get("latitude") is not None and stop.get("longitude") is not None for stop in stops)
    with_position = position is not None and position.get("latitude") is not None and position.get("longitude") is not None
    tiles: list[MapTile] = []
    box_height = ROUTE_HEIGHT
    if located and tile_url:
        coordinates = [(float(stop["latitude"]), float(stop["longitude"])) for stop in stops]
        if with_position:
            assert position is not None
            coordinates.append((float(position["latitude"]), float(position["longitude"])))
        points, tiles = _map_placed(coordinates, tile_url)
        box_height = MAP_HEIGHT
    elif located:
        raw = [_projected(float(stop["latitude"]), float(stop["longitude"])) for stop in stops]
        if with_position:
            assert position is not None
            raw.append(_projected(float(position["latitude"]), float(position["longitude"])))
        xs, ys = [point[0] for point in raw], [point[1] for point in raw]
        width, height = max(xs) - min(xs), max(ys) - min(ys)
        fits = [
            limit / extent
            for limit, extent in ((ROUTE_WIDTH - 2 * ROUTE_PAD_X, width), (ROUTE_HEIGHT - 2 * ROUTE_PAD_Y, height))
            if extent > 1e-9
        ]
        scale = min(fits) if fits else 1.0
        x0 = (ROUTE_WIDTH - width * scale) / 2 - min(xs) * scale
        y0 = (ROUTE_HEIGHT - height * scale) / 2 - min(ys) * scale
        points = [(x0 + x * scale, y0 + y * scale) for x, y in raw]
    else:
        step = (ROUTE_WIDTH - 2 * ROUTE_PAD_X) / (len(stops) - 1)
        points = [(ROUTE_PAD_X + index * step, ROUTE_HEIGHT / 2) for index in range(len(stops))]
    stop_points = [
        RoutePoint(
            label=str(stop["label"]),
            kind=str(stop["kind"]),
            x=round(x, 1),
            y=round(y, 1),
            reached=bool(stop.get("reached")),
            label_y=round(y - 16 if index % 2 == 0 else y + 26, 1),
        )
        for index, (stop, (x, y)) in enumerate(zip(stops, points, strict=False))
    ]
    reached = [index for index, point in enumerate(stop_points) if point.reached]
    last_reached = reached[-1] if reached else -1
    marker: RoutePoint | None = None
    if located and with_position:
        x, y = points[-1]
        marker = RoutePoint(label=_("Last known position"), kind="position", x=round(x, 1), y=round(y, 1), reached=True)
    elif not located and with_position and 0 <= last_reached < len(stop_points) - 1:
        # No coordinates to place it by: half-way to the next stop, which is all we know.
        here, there = stop_points[last_reached], stop_points[last_reached + 1]
        marker = RoutePoint(label=_("Last known position"), kind="position", x=(here.x + there.x) / 2, y=here.y, reached=True)
    line = [f"{point.x},{point.y}" for point in stop_points]
    travelled = line[: last_reached + 1] if last_reached >= 0 else line[:1]
    if marker is not None:
        travelled = [*travelled, f"{marker.x},{marker.y}"]
    return RouteSchematic(
        width=ROUTE_WIDTH,
        height=box_height,
        stops=stop_points,
        position=marker,
        travelled=" ".join(travelled),
        planned=" ".join(line),
        geographic=located,
        tiles=tiles,
    )
