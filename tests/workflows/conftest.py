"""Library templates for the workflow tests, published in public inside each test's transaction."""

import copy

import pytest

from governance.services import Actor
from tenants.db import connection
from workflows.management.commands.seed_library import CUSTOMER_MILESTONES, ORDER_RELEASE
from workflows.models import TemplateVersion, WorkflowTemplate
from workflows.services import template_create, template_version_publish

LIBRARIAN = Actor.system("tests-library")


def publish(
    entry: dict,
    *,
    version: str | None = None,
    key: str | None = None,
    partner_id: int | None = None,
    definition: dict | None = None,
    parameters_schema: dict | None = None,
) -> TemplateVersion:
    """Publish `entry` (a seed_library entry, possibly changed) on the public schema."""
    connection.set_schema_to_public()
    key = key or entry["key"]
    template = WorkflowTemplate.objects.filter(key=key).first() or template_create(
        key=key,
        name=entry["name"],
        category=entry["category"],
        description=entry["description"],
        partner_id=partner_id,
        actor=LIBRARIAN,
    )
    published = template_version_publish(
        template=template,
        version=version or entry["version"],
        definition=copy.deepcopy(definition if definition is not None else entry["definition"]),
        parameters_schema=copy.deepcopy(parameters_schema if parameters_schema is not None else entry["parameters_schema"]),
        documentation=entry["documentation"],
        changelog=entry["changelog"],
        actor=LIBRARIAN,
    )
    connection.set_schema_to_public()
    return published


@pytest.fixture
def order_release(db) -> TemplateVersion:
    return publish(ORDER_RELEASE)


@pytest.fixture
def milestones(db) -> TemplateVersion:
    return publish(CUSTOMER_MILESTONES)


@pytest.fixture
def fake():
    """A fresh in-process connector fake for the test; the previous port comes back after."""
    from workflows.engine import FakeConnector, connector_port_set

    port = FakeConnector()
    previous = connector_port_set(port)
    yield port
    connector_port_set(previous)
