"""The workspace's one navigation: the areas that exist, grouped by what people do there
(operate, build, measure, settings), each shown to the roles that work in it.

Showing is not permitting: every page still checks its own roles. The list only spares a
dispatcher the mapping tables and a customer everything but their shipments. Support sessions
see what a tenant admin sees, as their pages do.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.urls import reverse
from django.utils.translation import gettext as _

from accounts.models import TENANT_STAFF_ROLES, Role

STAFF = frozenset(TENANT_STAFF_ROLES)
OPERATORS = frozenset({Role.TENANT_ADMIN, Role.PLANNER, Role.DISPATCHER})
BUILDERS = frozenset({Role.TENANT_ADMIN, Role.PLANNER})
SHIPMENTS_PATH = "/shipments/"  # the shipment list pages (issue 6, built beside this one)


@dataclass(frozen=True)
class NavItem:
    label: str
    url: str
    roles: frozenset[str]
    prefixes: tuple[str, ...] = ()  # other paths that belong to this item (settings' pages)
    exact: bool = False  # Home is current on "/" only


@dataclass
class NavLink:
    label: str
    url: str
    current: bool = False


@dataclass
class NavGroup:
    label: str
    links: list[NavLink] = field(default_factory=list)

    @property
    def current(self) -> bool:
        return any(link.current for link in self.links)


def _items() -> list[tuple[str, list[NavItem]]]:
    settings_pages = ("/settings/",)
    return [
        (
            _("Operate"),
            [
                NavItem(_("Home"), reverse("portal:home"), STAFF, exact=True),
                NavItem(_("Shipments"), SHIPMENTS_PATH, STAFF | {Role.CUSTOMER}),
                NavItem(_("Notifications"), reverse("portal:notifications"), frozenset({Role.CUSTOMER})),
                NavItem(_("API keys"), reverse("portal:account_api_keys"), frozenset({Role.CUSTOMER})),
                NavItem(_("Exceptions"), reverse("exceptions:list"), STAFF),
                NavItem(_("Approvals"), reverse("workflows:approvals"), STAFF),
                NavItem(_("Runs"), reverse("workflows:runs"), OPERATORS),
                NavItem(_("Incidents"), reverse("workflows:incidents"), OPERATORS),
            ],
        ),
        (
            _("Build"),
            [
                NavItem(_("Workflows"), reverse("workflows:definitions"), BUILDERS),
                NavItem(_("Connections"), reverse("connectors:connections"), BUILDERS),
                NavItem(_("Notifications"), reverse("logistics:notifications"), BUILDERS | {Role.CUSTOMER_SERVICE}),
                NavItem(_("Status mappings"), reverse("logistics:mappings"), BUILDERS | {Role.DISPATCHER}),
            ],
        ),
        (_("Measure"), [NavItem(_("Outcomes"), reverse("insights:outcomes"), STAFF, prefixes=("/insights/",))]),
        (_("Settings"), [NavItem(_("Settings"), reverse("portal:users"), frozenset({Role.TENANT_ADMIN}), prefixes=settings_pages)]),
    ]


def _role(user) -> str:
    if getattr(user, "support_grant_id", None):
        return Role.TENANT_ADMIN
    return getattr(user, "role", "")


def _current_url(path: str, items: list[NavItem]) -> str:
    """The item the page belongs to: the longest matching path, so /workflows/runs/ is Runs, not Workflows."""
    best, length = "", -1
    for item in items:
        for prefix in (item.url, *item.prefixes):
            matches = path == prefix if item.exact else path.startswith(prefix)
            if matches and len(prefix) > length:
                best, length = item.url, len(prefix)
    return best


def navigation_for(user, path: str) -> list[NavGroup]:
    """The groups `user` sees on the page at `path`, without empty groups; nothing when signed out."""
    if not getattr(user, "is_authenticated", False):
        return []
    role = _role(user)
    grouped = [(label, [item for item in items if role in item.roles]) for label, items in _items()]
    visible = [item for _label, items in grouped for item in items]
    current = _current_url(path, visible)
    return [NavGroup(label, [NavLink(item.label, item.url, item.url == current) for item in items]) for label, items in grouped if items]
