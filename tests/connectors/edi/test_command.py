"""`manage.py edi parse|ack`: output and exit status, run as a real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.edi import read
from tests.connectors.edi.fixtures import ORDER_940, STATUS_214, envelope

ROOT = Path(__file__).resolve().parents[3]


def _edi(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", "edi", *args], cwd=ROOT, capture_output=True, text=True, env=os.environ.copy(), timeout=60
    )


@pytest.fixture
def clean_file(tmp_path: Path) -> Path:
    path = tmp_path / "status.edi"
    path.write_text(envelope(STATUS_214))
    return path


@pytest.fixture
def broken_file(tmp_path: Path) -> Path:
    path = tmp_path / "orders.edi"
    path.write_text(envelope(ORDER_940, ORDER_940.replace("N9*LI*001", "N9**001"), functional_id="OW"))
    return path


def test_parse_json_prints_documents_and_exits_0_when_clean(clean_file: Path) -> None:
    run = _edi("parse", str(clean_file), "--json")
    assert run.returncode == 0, run.stderr
    output = json.loads(run.stdout)
    [parsed] = output["sets"]
    assert (parsed["set"], parsed["accepted"], parsed["document"]["kind"]) == ("214", True, "shipment_status")
    assert parsed["document"]["milestones"][0]["occurred_at"] == "2026-03-01T08:15:00"
    assert output["errors"] == []


def test_parse_json_prints_every_error_with_its_position_and_exits_1(broken_file: Path) -> None:
    run = _edi("parse", str(broken_file), "--json")
    assert run.returncode == 1
    [error] = json.loads(run.stdout)["errors"]
    assert error["code"] == "element.missing"
    assert error["position"] == {
        "interchange": 1,
        "segment": 36,
        "offset": error["position"]["offset"],
        "segment_id": "N9",
        "set_segment": 15,
        "element": 1,
    }
    assert error["where"].startswith("interchange 1, segment 36 (N9), segment 15 of its transaction set, element 01, byte ")
    assert "1 error(s) in" in run.stderr


def test_parse_summary_names_each_set_and_error(broken_file: Path) -> None:
    run = _edi("parse", str(broken_file))
    assert run.returncode == 1
    assert run.stdout.splitlines()[:2] == [
        "interchange 1 group 7001 set 940 0001: warehouse_shipping_order, accepted",
        "interchange 1 group 7001 set 940 0002: warehouse_shipping_order, rejected",
    ]
    assert "element.missing: interchange 1, segment 36 (N9)" in run.stdout


def test_ack_prints_a_997_and_exits_1_when_something_was_rejected(broken_file: Path) -> None:
    run = _edi("ack", str(broken_file))
    assert run.returncode == 1
    lines = run.stdout.splitlines()
    assert lines[0].startswith("ISA*00*")
    assert [line for line in lines if line.startswith(("AK", "ST"))] == [
        "ST*997*0001~", "AK1*OW*7001~", "AK2*940*0001~", "AK5*A~", "AK2*940*0002~", "AK3*N9*15**8~", "AK4*1**1~", "AK5*R*5~", "AK9*P*2*2*1~",
    ]  # fmt: skip


def test_ack_999_flag(clean_file: Path) -> None:
    run = _edi("ack", str(clean_file), "--999")
    assert run.returncode == 0, run.stderr
    assert "ST*999*0001*005010X231~" in run.stdout.splitlines()
    assert "IK5*A~" in run.stdout.splitlines()


def test_unreadable_or_non_x12_file_exits_2(tmp_path: Path) -> None:
    missing = _edi("parse", str(tmp_path / "nope.edi"))
    assert (missing.returncode, missing.stderr.strip()) == (
        2,
        f"CommandError: Cannot read {tmp_path / 'nope.edi'}: No such file or directory",
    )
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    run = _edi("ack", str(text))
    assert run.returncode == 2
    assert "No ISA segment found: this is not an X12 interchange" in run.stderr


def test_a_file_of_several_interchanges_is_parsed_and_each_acknowledged_with_its_own_number(tmp_path: Path) -> None:
    path = tmp_path / "batch.edi"
    first = envelope(STATUS_214)
    path.write_text(first + envelope(STATUS_214).replace("000000101", "000000102").replace("*", "|").replace("~", "!"))

    parsed = _edi("parse", str(path), "--json")
    acked = _edi("ack", str(path))

    assert parsed.returncode == 0, parsed.stderr
    output = json.loads(parsed.stdout)
    assert [(item["index"], item["offset"], item["control_number"]) for item in output["interchanges"]] == [
        (1, 0, "000000101"),
        (2, len(first), "000000102"),
    ]
    assert [(item["interchange"], item["set"], item["accepted"]) for item in output["sets"]] == [(1, "214", True), (2, "214", True)]
    assert acked.returncode == 0, acked.stderr
    answers = read(acked.stdout).interchanges
    assert [answer.control_number for answer in answers] == ["000000001", "000000002"]
    assert [answer.groups[0].sets[0].code for answer in answers] == [
        "997",
        "997",
    ] and "AK1|QM|7001!" in acked.stdout  # answered in its own delimiters
