"""`make conformance`: run the EDI reader over every file in ../shared/samples/ and say what it made of each.

Those files come from other projects (see SOURCES.md there) and are read in place, never copied
into this repository. Per X12 file: interchanges, sets by type, documents, errors with their
positions, what was refused and why, the 997 verdict per group (the 997 also written: a 997 the
writer refuses makes the file "crashed"), and how the inbox would store it
(an event per interchange, one per piece of text outside them); non-X12 files are listed as skipped. The JSON report goes to var/conformance/edi.json. Exit status 1 only when the reader
crashed on a file; refusing a broken sample is a finding, not a failure.

    BATON_SAMPLES_DIR=/path/to/samples python -m connectors.edi.conformance
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections import Counter
from pathlib import Path
from typing import Any

from connectors.edi.ack import acknowledge, group_acknowledgement
from connectors.edi.parse import parse
from connectors.edi.reader import split
from connectors.edi.report import error_json

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "var" / "conformance" / "edi.json"


def samples_dir() -> Path:
    return Path(os.environ.get("BATON_SAMPLES_DIR") or ROOT.parent / "shared" / "samples")


def is_x12(data: bytes) -> bool:
    return data.lstrip(b" \t\r\n\x00\xef\xbb\xbf").startswith(b"ISA")


def check_file(path: Path) -> dict[str, Any]:
    data = path.read_bytes()
    if not is_x12(data):
        return {"status": "skipped", "why": "not X12 (does not start with an ISA segment)"}
    result = parse(data)
    refused = [
        {
            "set": parsed.code,
            "control_number": parsed.control_number,
            "interchange": parsed.interchange,
            "why": [error.describe() for error in parsed.errors],
        }
        for parsed in result.sets
        if not parsed.accepted
    ]
    acknowledgements = [
        {
            "interchange": interchange.index,
            "group": ack.group_control_number,
            "status": ack.status,
            "sets": {answer.control_number: answer.status for answer in ack.sets},
        }
        for interchange in result.interchanges
        for ack in (group_acknowledgement(group) for group in interchange.groups)
    ]
    # Written too, as the inbox does: the writer reads its 997 back and raises when it is not valid X12.
    for interchange in result.interchanges:
        acknowledge(interchange)
    return {
        "status": "clean" if result.ok else "errors",
        "bytes": len(data),
        "interchanges": len(result.interchanges),
        "sets_by_type": dict(Counter(parsed.code for parsed in result.sets)),
        "documents": dict(Counter(document.kind for document in result.documents)),
        "errors": [error_json(error) for error in result.errors],
        "refused": refused,
        "acknowledgements": acknowledgements,
        "stored_as": _stored_as(data),
    }


def _stored_as(data: bytes) -> dict[str, int]:
    """How the inbox would store the file: an event per interchange, one per piece of text outside them."""
    parts = split(data)
    return {"interchanges": sum(not part.outside for part in parts), "outside": sum(part.outside for part in parts)}


def main() -> int:
    directory = samples_dir()
    if not directory.is_dir():
        print(f"No samples directory at {directory}: nothing to check (set BATON_SAMPLES_DIR to point at one).")
        return 0
    files = sorted(path for path in directory.rglob("*") if path.is_file())
    report: dict[str, Any] = {"samples_dir": str(directory), "files": {}}
    crashed = 0
    for number, path in enumerate(files, 1):
        name = str(path.relative_to(directory))
        try:
            outcome = check_file(path)
        except Exception as exc:  # noqa: BLE001 - a crash on one sample is reported, the run goes on
            crashed += 1
            outcome = {"status": "crashed", "why": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}
        report["files"][name] = outcome
        print(f"[{number}/{len(files)}] {name}: {_line(outcome)}")
        for error in outcome.get("errors", []):
            print(f"      {error['code']}: {error['where']}: {error['message']}")
    statuses = Counter(outcome["status"] for outcome in report["files"].values())
    report["summary"] = dict(statuses)
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    REPORT.write_text(json.dumps(report, indent=2) + "\n")
    print(
        f"{len(files)} files: "
        + ", ".join(f"{count} {status}" for status, count in sorted(statuses.items()))
        + f"; report in {REPORT.relative_to(ROOT)}"
    )
    return 1 if crashed else 0


def _line(outcome: dict[str, Any]) -> str:
    if outcome["status"] in ("skipped", "crashed"):
        return f"{outcome['status']}: {outcome['why']}"
    sets = ", ".join(f"{count}x{code}" for code, count in outcome["sets_by_type"].items()) or "no sets"
    verdicts = "; ".join(f"group {ack['group']} {ack['status']}" for ack in outcome["acknowledgements"])
    refused = f", {len(outcome['refused'])} refused" if outcome["refused"] else ""
    return f"{outcome['interchanges']} interchange(s), {sets}, {sum(outcome['documents'].values())} document(s), {len(outcome['errors'])} error(s){refused}; 997: {verdicts}"


if __name__ == "__main__":
    sys.exit(main())
