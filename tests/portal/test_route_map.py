"""The shipment page's map: with a tile server configured (`BATON_MAP_TILE_URL`) the route lies on
its Web Mercator tiles, placed so every stop and the last position fit the box; without one, or
for places without coordinates, the page draws the schematic route and loads nothing from outside.
In the browser, the tiles come from a small tile server on loopback."""

from __future__ import annotations

import http.server
import math
import os
import struct
import threading
import uuid
import zlib
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from django_tenants.utils import schema_context
from playwright.sync_api import sync_playwright

from logistics.models import StopKind
from logistics.services import StopInput, location_create, shipment_create
from portal.shipment_pages import MAP_HEIGHT, ROUTE_PAD_X, ROUTE_PAD_Y, ROUTE_WIDTH, TILE_SIZE, route_schematic
from tests.browser import CHROMIUM, CHROMIUM_ARGS, screenshot, sign_in
from tests.conftest import PASSWORD, signed_in_client
from tests.logistics.conftest import SYSTEM
from tests.processes import web_server

TILES = "http://127.0.0.1:9/tiles/{z}/{x}/{y}.png"
CHICAGO = {"label": "Chicago DC", "kind": "pickup", "latitude": 41.8781, "longitude": -87.6298, "reached": True}
DENVER = {"label": "Denver store", "kind": "delivery", "latitude": 39.7392, "longitude": -104.9903, "reached": False}
IOWA = {"latitude": 41.59, "longitude": -93.62}


def _tile_numbers(url: str) -> tuple[int, int, int]:
    z, x, y = url.removeprefix("http://127.0.0.1:9/tiles/").removesuffix(".png").split("/")
    return int(z), int(x), int(y)


# --- placing the route on tiles ----------------------------------------------------------------


def test_with_a_tile_server_the_stops_and_position_fit_the_map_at_the_closest_zoom_and_the_tiles_cover_it():
    route = route_schematic([CHICAGO, DENVER], IOWA, TILES)
    assert route is not None and route.height == MAP_HEIGHT and route.tiles
    points = [*route.stops, route.position]
    for point in points:
        assert point is not None
        assert ROUTE_PAD_X - 1 <= point.x <= ROUTE_WIDTH - ROUTE_PAD_X + 1 and ROUTE_PAD_Y - 1 <= point.y <= MAP_HEIGHT - ROUTE_PAD_Y + 1
    zooms = {_tile_numbers(tile.url)[0] for tile in route.tiles}
    assert zooms == {5}  # Chicago to Denver (about 1,450 km) fits 460 px at zoom 5, not at 6
    # The tiles cover the whole box, each one tile wide, and none is off the box.
    assert min(tile.left for tile in route.tiles) <= 0 and max(tile.left + tile.width for tile in route.tiles) >= 100
    assert min(tile.top for tile in route.tiles) <= 0 and max(tile.top + tile.height for tile in route.tiles) >= 100
    assert all(tile.width == pytest.approx(TILE_SIZE / ROUTE_WIDTH * 100, abs=0.001) for tile in route.tiles)
    assert all(-tile.width < tile.left < 100 and -tile.height < tile.top < 100 for tile in route.tiles)
    # Chicago lies east of Denver and Denver south of Chicago, on the map as on the ground.
    chicago, denver = route.stops
    assert chicago.x > denver.x and chicago.y < denver.y
    # The pixel a stop sits on is where its tile puts that place: Chicago's tile holds Chicago.
    z = 5
    x_tile = math.floor((CHICAGO["longitude"] + 180) / 360 * 2**z)
    assert any(
        _tile_numbers(tile.url)[1] == x_tile and tile.left <= chicago.x / ROUTE_WIDTH * 100 < tile.left + tile.width for tile in route.tiles
    )


def test_stops_close_together_get_a_closer_zoom_and_without_a_server_or_coordinates_no_tile_is_asked_for():
    near = {**DENVER, "latitude": 41.85, "longitude": -87.9}
    (close,) = {_tile_numbers(tile.url)[0] for tile in route_schematic([CHICAGO, near], None, TILES).tiles}  # type: ignore[union-attr]
    assert close > 5
    assert route_schematic([CHICAGO, DENVER], IOWA).tiles == []  # type: ignore[union-attr]
    nowhere = [{**CHICAGO, "latitude": None, "longitude": None}, DENVER]
    schematic = route_schematic(nowhere, None, TILES)
    assert schematic is not None and schematic.tiles == [] and not schematic.geographic and schematic.height < MAP_HEIGHT


# --- the page ----------------------------------------------------------------------------------


def _shipment(world, tag: str) -> str:
    now = timezone.now()
    with schema_context(world.acme.schema):
        origin = location_create(
            code=f"map-chi-{tag}", name="Chicago DC", time_zone="America/Chicago", city="Chicago",
            latitude="41.8781", longitude="-87.6298", actor=SYSTEM,
        )  # fmt: skip
        destination = location_create(
            code=f"map-den-{tag}", name="Denver store", time_zone="America/Denver", city="Denver",
            latitude="39.7392", longitude="-104.9903", actor=SYSTEM,
        )  # fmt: skip
        shipment = shipment_create(
            customer_account=world.acme.customer_accounts[0],
            reference=f"MAP-{tag}",
            carrier_scac="ODFL",
            stops=[
                StopInput(1, StopKind.PICKUP, origin, now - timedelta(hours=4), now - timedelta(hours=3)),
                StopInput(2, StopKind.DELIVERY, destination, now + timedelta(hours=10), now + timedelta(hours=12)),
            ],
            actor=SYSTEM,
        )
        return shipment.reference


@pytest.mark.django_db
def test_the_page_lays_the_route_on_the_configured_tiles_with_their_attribution_and_loads_none_without(world):
    reference = _shipment(world, uuid.uuid4().hex[:6])
    client = signed_in_client(world.acme.host, world.acme.users["customer"], world.acme.schema)
    with override_settings(BATON_MAP_TILE_URL=TILES, BATON_MAP_ATTRIBUTION="© Test Tiles contributors"):
        mapped = client.get(f"/shipments/{reference}/").content.decode()
    assert 'class="route-map__tile" src="http://127.0.0.1:9/tiles/5/' in mapped
    assert "route-svg--on-map" in mapped and "Map from your tile server. © Test Tiles contributors" in mapped
    plain = client.get(f"/shipments/{reference}/").content.decode()
    assert "route-map__tile" not in plain and "127.0.0.1:9" not in plain
    assert "coordinates; no map is loaded." in plain


# --- in the browser, from a tile server on loopback ------------------------------------------------


def _png(width: int, height: int, pixel) -> bytes:
    rows = b"".join(b"\x00" + b"".join(bytes(pixel(x, y)) for x in range(width)) for y in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


# A plain map-like tile: land with a faint grid, so a screenshot shows where the tiles are.
TILE_PNG = _png(TILE_SIZE, TILE_SIZE, lambda x, y: (214, 226, 206) if x % 64 and y % 64 else (188, 200, 182))


@pytest.fixture
def tile_server() -> Iterator[tuple[int, list[str]]]:
    asked: list[str] = []

    class Tiles(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(TILE_PNG)))
            self.end_headers()
            self.wfile.write(TILE_PNG)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], asked
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def map_port(tile_server, tmp_path, django_db_setup):
    port, _asked = tile_server
    saved = {name: os.environ.get(name) for name in ("DEBUG", "BATON_MAP_TILE_URL", "BATON_MAP_ATTRIBUTION")}
    os.environ.update(
        DEBUG="0",
        BATON_MAP_TILE_URL=f"http://127.0.0.1:{port}/{{z}}/{{x}}/{{y}}.png",
        BATON_MAP_ATTRIBUTION="© Test Tiles contributors",
    )
    try:
        with web_server(tmp_path / "web.log") as web:
            yield web
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@pytest.mark.browser
def test_a_customer_sees_the_route_on_the_tile_servers_map(world, committed, tile_server, map_port):
    _port, asked = tile_server
    reference = _shipment(world, uuid.uuid4().hex[:6])
    base = f"http://{world.acme.host}:{map_port}"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_context(viewport={"width": 1366, "height": 900}).new_page()
        sign_in(page, base, world.acme.users["customer"].email, PASSWORD)
        page.goto(f"{base}/shipments/{reference}/")
        page.wait_for_load_state("networkidle")
        assert page.locator("img.route-map__tile").count() > 0
        every_tile_loaded = "[...document.querySelectorAll('img.route-map__tile')].every(img => img.complete && img.naturalWidth === 256)"
        assert page.evaluate(every_tile_loaded), "a tile did not load from the tile server"
        screenshot(page, "portal-shipment-map")  # desktop and phone
        browser.close()
    assert asked and all(path.startswith("/5/") and path.endswith(".png") for path in asked)
