"""A definition is refused with every problem listed, each by JSON pointer and a reason a person can act on."""

import copy

import pytest

from workflows.definition_schema import render_placeholders
from workflows.validation import (
    DefinitionInvalid,
    DefinitionProblem,
    cron_problem,
    definition_validate,
    parameters_schema_validate,
    parameters_validate,
)

P = DefinitionProblem

VALID = {
    "start": "check-order",
    "triggers": [
        {"kind": "event", "event_type": "order.received", "filter": "event.total > 0"},
        {"kind": "schedule", "cron": "0 6 * * 1-5"},
        {"kind": "manual"},
        {"kind": "api", "key": "order-release"},
    ],
    "steps": [
        {
            "id": "check-order",
            "kind": "decision",
            "name": "Valid order?",
            "cases": [{"when": "input.lines.size() > 0 && !input.credit_hold", "next": "tender"}],
            "default": "route-to-queue",
        },
        {
            "id": "tender",
            "kind": "connector",
            "connection": "carrier-tms",
            "action": "tender_load",
            "input": {"order": "$.input"},
            "next": "wait-990",
            "retry": {"attempts": 5, "backoff_seconds": 30, "jitter": True, "non_retryable": ["InvalidRequest"]},
        },
        {
            "id": "wait-990",
            "kind": "wait_event",
            "event_type": "edi.990",
            "correlate": {"order_id": "input.order_id"},
            "timeout": "PT4H",
            "next": "approve",
            "on_timeout": "route-to-queue",
        },
        {
            "id": "approve",
            "kind": "approval",
            "assignee_roles": ["planner"],
            "due": "PT2H",
            "escalate_to": ["tenant_admin"],
            "next": "release",
            "on_reject": "route-to-queue",
        },
        {"id": "release", "kind": "transform", "mapping": {"release.order": "$.input.order_id"}, "next": "wait"},
        {"id": "wait", "kind": "wait_until", "until": "PT1H", "business_time": True, "next": "par"},
        {"id": "par", "kind": "parallel", "branches": ["child", "notify"], "join": "done"},
        {"id": "child", "kind": "child_workflow", "definition": "other-key", "next": None},
        {
            "id": "notify",
            "kind": "notify",
            "channel": "email",
            "to_roles": ["customer_service"],
            "template": "order-released",
            "next": None,
        },
        {"id": "done", "kind": "end", "outcome": "succeeded"},
        {"id": "route-to-queue", "kind": "end", "outcome": "failed"},
        {"id": "cancel-tender", "kind": "connector", "connection": "carrier-tms", "action": "cancel_tender", "next": None},
    ],
    "compensation": {"tender": "cancel-tender"},
}


def _changed(change) -> dict:
    definition = copy.deepcopy(VALID)
    change(definition)
    return definition


def _step(definition, step_id) -> dict:
    return next(step for step in definition["steps"] if step["id"] == step_id)


def test_the_reference_definition_with_every_step_kind_is_valid():
    assert definition_validate(VALID) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d.pop("start"), P("/start", "is required")),
        (lambda d: d.update(owner="me"), P("/owner", "is not an allowed property here")),
        (lambda d: d.update(priority="urgent"), P("/priority", "must be one of: high, normal, low")),
        (lambda d: _step(d, "tender").pop("action"), P("/steps/1/action", "is required")),
        (lambda d: _step(d, "tender").update(retries=3), P("/steps/1/retries", "is not a property of a step of kind 'connector'")),
        (lambda d: _step(d, "tender")["retry"].update(attempts=0), P("/steps/1/retry/attempts", "must be at least 1")),
        (lambda d: _step(d, "tender")["retry"].update(attempts="5"), P("/steps/1/retry/attempts", "must be a whole number")),
        (
            lambda d: _step(d, "release").update(kind="script"),
            P(
                "/steps/4/kind",
                "must be one of: connector, transform, decision, wait_event, wait_until, approval, parallel, child_workflow, notify, end",
            ),
        ),
        (lambda d: _step(d, "notify").update(next=7), P("/steps/8/next", "must be a string or null")),
        (
            lambda d: _step(d, "approve").update(assignee_roles=["ceo"]),
            P("/steps/3/assignee_roles/0", "must be one of: tenant_admin, planner, dispatcher, customer_service, finance"),
        ),
        (lambda d: _step(d, "notify").update(channel="pigeon"), P("/steps/8/channel", "must be one of: email, webhook, sms")),
        (lambda d: _step(d, "done").update(outcome="ok"), P("/steps/9/outcome", "must be one of: succeeded, failed, cancelled")),
        (lambda d: d["triggers"][0].pop("event_type"), P("/triggers/0/event_type", "is required")),
        (
            lambda d: d["triggers"][0].update(event_type="Order Received"),
            P("/triggers/0/event_type", "must be an event type such as 'order.received'"),
        ),
        (lambda d: d["triggers"].append({"kind": "email"}), P("/triggers/4/kind", "must be one of: event, schedule, manual, api")),
        (lambda d: d["triggers"][2].update(cron="* * * * *"), P("/triggers/2/cron", "is not a property of a trigger of kind 'manual'")),
        (
            lambda d: _step(d, "child").update(definition="Other Key"),
            P("/steps/7/definition", "must be lowercase letters, digits, '-' or '_', starting with a letter or digit (at most 80)"),
        ),
    ],
    ids=lambda value: value.pointer if isinstance(value, DefinitionProblem) else "",
)
def test_schema_problems_carry_the_exact_pointer_and_reason(change, expected):
    assert definition_validate(_changed(change)) == [expected]


def test_a_definition_without_steps_says_so_and_what_then_has_no_target():
    assert definition_validate(_changed(lambda d: d.update(steps=[]))) == [
        P("/compensation/tender", "'cancel-tender' is not the id of a step in this definition"),
        P("/compensation/tender", "compensates 'tender', which is not the id of a step in this definition"),
        P("/start", "'check-order' is not the id of a step in this definition"),
        P("/steps", "must not be empty"),
    ]


def test_a_parallel_step_needs_two_branches():
    assert definition_validate(_changed(lambda d: _step(d, "par").update(branches=["child"]))) == [
        P("/steps/6/branches", "must have at least 2 items"),
        P("/steps/8", "step 'notify' cannot be reached from the start step 'check-order'"),
    ]


def test_a_duplicate_step_id_names_the_first_step_with_it():
    problems = definition_validate(_changed(lambda d: _step(d, "route-to-queue").update(id="done")))
    assert P("/steps/10/id", "'done' is already the id of /steps/9") in problems


@pytest.mark.parametrize(
    ("change", "pointer"),
    [
        (lambda d: d.update(start="nowhere"), "/start"),
        (lambda d: _step(d, "tender").update(next="nowhere"), "/steps/1/next"),
        (lambda d: _step(d, "check-order").update(default="nowhere"), "/steps/0/default"),
        (lambda d: _step(d, "check-order")["cases"][0].update(next="nowhere"), "/steps/0/cases/0/next"),
        (lambda d: _step(d, "wait-990").update(on_timeout="nowhere"), "/steps/2/on_timeout"),
        (lambda d: _step(d, "approve").update(on_reject="nowhere"), "/steps/3/on_reject"),
        (lambda d: _step(d, "par").update(branches=["child", "nowhere"]), "/steps/6/branches/1"),
        (lambda d: _step(d, "par").update(join="nowhere"), "/steps/6/join"),
        (lambda d: d.update(compensation={"tender": "nowhere"}), "/compensation/tender"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_every_transition_must_name_an_existing_step(change, pointer):
    assert P(pointer, "'nowhere' is not the id of a step in this definition") in definition_validate(_changed(change))


def test_compensation_must_undo_an_existing_step_and_not_itself():
    problems = definition_validate(_changed(lambda d: d.update(compensation={"ghost": "cancel-tender", "tender": "tender"})))
    assert P("/compensation/ghost", "compensates 'ghost', which is not the id of a step in this definition") in problems
    assert P("/compensation/tender", "a step cannot compensate itself") in problems


def test_an_unreachable_step_is_an_error_but_a_compensation_handler_is_reached_through_its_step():
    assert definition_validate(_changed(lambda d: d["steps"].append({"id": "orphan", "kind": "end", "outcome": "succeeded"}))) == [
        P("/steps/12", "step 'orphan' cannot be reached from the start step 'check-order'")
    ]
    problems = definition_validate(_changed(lambda d: d.pop("compensation")))
    assert problems == [P("/steps/11", "step 'cancel-tender' cannot be reached from the start step 'check-order'")]


@pytest.mark.parametrize(
    ("change", "pointer", "column"),
    [
        (lambda d: _step(d, "check-order")["cases"][0].update(when="input.total >"), "/steps/0/cases/0/when", 13),
        (lambda d: d["triggers"][0].update(filter="event.total >>> 0"), "/triggers/0/filter", 14),
        (lambda d: _step(d, "wait-990")["correlate"].update(order_id="input.(order_id"), "/steps/2/correlate/order_id", 7),
    ],
)
def test_expressions_must_parse_as_cel(change, pointer, column):
    assert definition_validate(_changed(change)) == [P(pointer, f"is not a valid CEL expression: syntax error at line 1, column {column}")]


def test_an_expression_is_parsed_never_run():
    """A call that would have an effect if evaluated is only parsed: it is valid syntax."""
    assert definition_validate(_changed(lambda d: d["triggers"][0].update(filter='system.exit(1) == "x"'))) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda d: _step(d, "wait-990").update(timeout="4 hours"),
            P("/steps/2/timeout", "must be an ISO 8601 duration such as PT4H or P1DT12H"),
        ),
        (lambda d: _step(d, "approve").update(due="PT"), P("/steps/3/due", "must be an ISO 8601 duration such as PT4H or P1DT12H")),
        (lambda d: _step(d, "tender").update(timeout="PT0S"), P("/steps/1/timeout", "must be longer than zero")),
        (
            lambda d: _step(d, "wait").update(until="2026-12-01T06:00:00"),
            P("/steps/5/until", "must carry a UTC offset (such as +01:00 or Z), or be a duration such as PT1H"),
        ),
        (
            lambda d: _step(d, "wait").update(until="tomorrow"),
            P("/steps/5/until", "must be an ISO 8601 duration (PT1H) or a date-time with a UTC offset (2026-01-31T06:00:00+01:00)"),
        ),
    ],
    ids=lambda value: value.pointer if isinstance(value, DefinitionProblem) else "",
)
def test_durations_and_times_must_be_iso_8601(change, expected):
    assert definition_validate(_changed(change)) == [expected]


@pytest.mark.parametrize("until", ["P1DT12H", "P2W", "PT0.5S", "2026-12-01T06:00:00+01:00", "2026-12-01T06:00:00Z"])
def test_valid_waits(until):
    assert definition_validate(_changed(lambda d: _step(d, "wait").update(until=until))) == []


@pytest.mark.parametrize("cron", ["0 6 * * 1-5", "*/15 8-18 * * mon-fri", "0 0 1 jan,jul *", "30 23 28-31 * 0,7", "5 4 * * sun"])
def test_valid_cron_lines(cron):
    assert cron_problem(cron) == ""


@pytest.mark.parametrize(
    ("cron", "reason"),
    [
        ("0 6 * *", "must have 5 fields (minute hour day-of-month month day-of-week), not 4"),
        ("0 6 * * * *", "must have 5 fields (minute hour day-of-month month day-of-week), not 6"),
        ("61 * * * *", "the minute field '61' has 61, outside 0-59"),
        ("0 24 * * *", "the hour field '24' has 24, outside 0-23"),
        ("0 0 0 * *", "the day of month field '0' has 0, outside 1-31"),
        ("0 0 * 13 *", "the month field '13' has 13, outside 1-12"),
        ("0 0 * * 8", "the day of week field '8' has 8, outside 0-7"),
        ("0 0 * * fri-mon", "the day of week field 'fri-mon' has a range 'fri-mon' that runs backwards"),
        ("*/0 * * * *", "the minute field '*/0' has an invalid step '0'"),
        ("5/10 * * * *", "the minute field '5/10' may only use a step after '*' or a range"),
        ("0 noon * * *", "the hour field 'noon' has 'noon', which is not a number"),
        ("0 0 * smarch *", "the month field 'smarch' has 'smarch', which is not a number or a name"),
    ],
)
def test_invalid_cron_lines_say_which_field_and_why(cron, reason):
    assert cron_problem(cron) == reason
    definition = _changed(lambda d: d["triggers"][1].update(cron=cron))
    assert definition_validate(definition) == [P("/triggers/1/cron", reason)]


def test_a_definition_with_several_problems_lists_them_all_in_document_order():
    def break_it(d):
        d["triggers"][1]["cron"] = "99 * * * *"
        _step(d, "check-order")["cases"][0]["when"] = "&&"
        _step(d, "tender").pop("action")
        _step(d, "wait-990")["timeout"] = "soon"
        _step(d, "approve")["next"] = "nowhere"
        d["steps"].append({"id": "orphan", "kind": "end", "outcome": "succeeded"})

    assert definition_validate(_changed(break_it)) == [
        P("/steps/0/cases/0/when", "is not a valid CEL expression: syntax error at line 1, column 1"),
        P("/steps/1/action", "is required"),
        P("/steps/2/timeout", "must be an ISO 8601 duration such as PT4H or P1DT12H"),
        P("/steps/3/next", "'nowhere' is not the id of a step in this definition"),
        # release, wait, par, child, notify and done were only reachable through approve → release
        P("/steps/4", "step 'release' cannot be reached from the start step 'check-order'"),
        P("/steps/5", "step 'wait' cannot be reached from the start step 'check-order'"),
        P("/steps/6", "step 'par' cannot be reached from the start step 'check-order'"),
        P("/steps/7", "step 'child' cannot be reached from the start step 'check-order'"),
        P("/steps/8", "step 'notify' cannot be reached from the start step 'check-order'"),
        P("/steps/9", "step 'done' cannot be reached from the start step 'check-order'"),
        P("/steps/12", "step 'orphan' cannot be reached from the start step 'check-order'"),
        P("/triggers/1/cron", "the minute field '99' has 99, outside 0-59"),
    ]


def test_not_an_object_at_all():
    assert definition_validate(["steps"]) == [P("", "must be an object")]


def test_placeholders_are_checked_once_rendered_and_refused_when_left_unbound():
    template = _changed(lambda d: _step(d, "wait-990").update(timeout="{{params.tender_timeout}}"))
    template["steps"][1]["retry"]["attempts"] = "{{params.attempts}}"
    assert definition_validate(template, placeholders=True) == []
    assert definition_validate(template) == [
        P("/steps/1/retry/attempts", "still holds the placeholder {{params.attempts}}: bind the parameter"),
        P("/steps/2/timeout", "still holds the placeholder {{params.tender_timeout}}: bind the parameter"),
    ]
    rendered, unbound = render_placeholders(template, {"tender_timeout": "PT2H", "attempts": 3})
    assert unbound == [] and _step(rendered, "wait-990")["timeout"] == "PT2H" and _step(rendered, "tender")["retry"]["attempts"] == 3
    assert definition_validate(rendered) == []


def test_a_placeholder_inside_text_is_replaced_by_the_value_as_text_or_json():
    rendered, unbound = render_placeholders(
        {"filter": "event.code in {{params.codes}} && event.carrier == '{{params.carrier}}'", "x": "{{params.ghost}}"},
        {"codes": ["A", "B"], "carrier": "acme"},
    )
    assert rendered["filter"] == 'event.code in ["A", "B"] && event.carrier == \'acme\''
    assert [(item.pointer, item.name) for item in unbound] == [("/x", "ghost")]


SCHEMA = {
    "type": "object",
    "required": ["carrier_connection"],
    "properties": {
        "carrier_connection": {"type": "string", "minLength": 1},
        "approval_over_value": {"type": "number", "minimum": 0, "default": 50000},
        "approver_role": {"enum": ["planner", "tenant_admin"], "default": "planner"},
        "limits": {"type": "object", "properties": {"max_lines": {"type": "integer", "default": 500}}, "default": {}},
    },
}


def test_parameters_get_their_defaults_including_nested_ones():
    values, problems = parameters_validate(SCHEMA, {"carrier_connection": "tms"})
    assert problems == []
    assert values == {"carrier_connection": "tms", "approval_over_value": 50000, "approver_role": "planner", "limits": {"max_lines": 500}}


def test_parameters_unknown_missing_and_invalid_are_all_listed_under_parameters():
    values, problems = parameters_validate(SCHEMA, {"approval_over_value": -1, "approver_role": "ceo", "carier_connection": "tms"})
    assert problems == [
        P("/parameters/approval_over_value", "must be at least 0"),
        P("/parameters/approver_role", "must be one of: planner, tenant_admin"),
        P("/parameters/carier_connection", "is not a parameter of this template"),
        P("/parameters/carrier_connection", "is required"),
    ]
    assert parameters_validate(SCHEMA, "tms") == ({}, [P("/parameters", "must be an object of parameter values")])


def test_a_parameters_schema_must_be_a_json_schema_for_an_object_with_fitting_defaults():
    assert parameters_schema_validate(SCHEMA) == []
    assert parameters_schema_validate({"type": "objekt"}) == [
        P("/parameters_schema/type", "'objekt' is not valid under any of the given schemas")
    ]
    assert parameters_schema_validate({"type": "array"}) == [P("/parameters_schema/type", "must be 'object': parameters are named values")]
    assert parameters_schema_validate({"type": "object", "properties": {"n": {"type": "integer", "default": "five"}}}) == [
        P("/parameters_schema/properties/n/default", "does not fit its own schema: 'five' is not of type 'integer'")
    ]


def test_definition_invalid_carries_its_problems_and_says_how_many():
    error = DefinitionInvalid([P("/start", "is required"), P("/steps", "must not be empty")])
    assert error.problems == [P("/start", "is required"), P("/steps", "must not be empty")]
    assert str(error) == "2 problems: /start is required"
