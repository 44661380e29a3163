"""`manage.py edi parse FILE [--json]` and `manage.py edi ack FILE [--999]`.

A file may hold several interchanges back to back: `parse` reports each (with its byte offset in
the JSON) and `ack` prints one acknowledgement per interchange, numbered on from 000000001, as the
inbox answers each interchange of a received file on its own.

Exit status: 0 when the file has no error, 1 when it has errors (they are printed, and `ack`
still prints the acknowledgement rejecting them), 2 when the file cannot be read or holds no
interchange.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from connectors.edi import InMemoryControlNumbers, ParseResult, acknowledge, parse
from connectors.edi.report import result_json


class Command(BaseCommand):
    help = "Parse an X12 file into Baton's documents, or print the 997/999 acknowledging it."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        parse_parser = actions.add_parser("parse", help="print the normalized documents and every error with its position")
        parse_parser.add_argument("file")
        parse_parser.add_argument("--json", action="store_true", help="print JSON instead of a summary")
        ack_parser = actions.add_parser("ack", help="print the acknowledgement of every interchange in the file")
        ack_parser.add_argument("file")
        ack_parser.add_argument("--999", dest="implementation", action="store_true", help="a 999 instead of a 997")

    def handle(self, *args: object, **options: object) -> None:
        path = Path(str(options["file"]))
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror}", returncode=2) from exc
        result = parse(data)
        if not result.interchanges or not any(interchange.groups for interchange in result.interchanges):
            if options["action"] == "parse" and options.get("json"):
                self.stdout.write(json.dumps({"file": str(path), **result_json(result)}, indent=2))
            else:
                for error in result.errors:
                    self.stderr.write(error.describe())
            raise CommandError(f"{path} holds no X12 interchange with a functional group", returncode=2)
        if options["action"] == "ack":
            kind = "999" if options["implementation"] else "997"
            control_numbers = InMemoryControlNumbers()  # one count for the file: each answer gets its own ISA13
            for interchange in result.interchanges:
                text = acknowledge(interchange, kind=kind, control_numbers=control_numbers)
                if text:
                    self.stdout.write(text, ending="" if text.endswith("\n") else "\n")
        elif options["json"]:
            self.stdout.write(json.dumps({"file": str(path), **result_json(result)}, indent=2))
        else:
            self._summary(result)
        if result.errors:
            raise CommandError(f"{len(result.errors)} error(s) in {path}", returncode=1)

    def _summary(self, result: ParseResult) -> None:
        for parsed in result.sets:
            verdict = "accepted" if parsed.accepted else "rejected"
            kind = parsed.document.kind if parsed.document is not None else "unsupported"
            self.stdout.write(
                f"interchange {parsed.interchange} group {parsed.group_control_number} set {parsed.code} {parsed.control_number}: {kind}, {verdict}"
            )
        for error in result.errors:
            self.stdout.write(f"  {error.code}: {error.describe()}")
