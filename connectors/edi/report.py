"""JSON shapes of parse results, shared by the `edi` command and the conformance run."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from connectors.edi.documents import to_jsonable
from connectors.edi.errors import EdiError
from connectors.edi.parse import ParsedSet, ParseResult


def error_json(error: EdiError) -> dict[str, Any]:
    data = {key: value for key, value in asdict(error).items() if value is not None and key != "position"}
    data["position"] = {key: value for key, value in asdict(error.position).items() if value not in (None, "")}
    data["where"] = error.position.describe()
    return data


def set_json(parsed: ParsedSet) -> dict[str, Any]:
    return {
        "interchange": parsed.interchange,
        "functional_id": parsed.functional_id,
        "group_control_number": parsed.group_control_number,
        "set": parsed.code,
        "control_number": parsed.control_number,
        "supported": parsed.supported,
        "accepted": parsed.accepted,
        "document": to_jsonable(parsed.document),
        "errors": [error_json(error) for error in parsed.errors],
    }


def result_json(result: ParseResult) -> dict[str, Any]:
    return {
        "interchanges": [
            {
                "index": interchange.index,
                "offset": interchange.header.offset,
                "control_number": interchange.control_number,
                "sender": f"{interchange.sender_qualifier}:{interchange.sender_id}",
                "receiver": f"{interchange.receiver_qualifier}:{interchange.receiver_id}",
                "version": interchange.version,
                "usage": interchange.usage,
                "delimiters": asdict(interchange.delimiters),
                "groups": [
                    {
                        "functional_id": group.functional_id,
                        "control_number": group.control_number,
                        "version": group.version,
                        "sets": len(group.sets),
                    }
                    for group in interchange.groups
                ],
            }
            for interchange in result.interchanges
        ],
        "sets": [set_json(parsed) for parsed in result.sets],
        "errors": [error_json(error) for error in result.errors],
    }
