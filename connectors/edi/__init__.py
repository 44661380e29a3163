"""X12 EDI for Baton: read, validate, normalize, acknowledge and write interchanges.

Pure Python, no database. Entry points: `parse` (bytes in, documents and positioned errors out),
`acknowledge` (a 997/999 for a parsed interchange), `write_interchange` (documents out, with a
partner's settings and control numbers), `split` (a file's interchanges and the text outside them,
to store each on its own).
"""

from connectors.edi.ack import acknowledge, group_acknowledgement, reply_settings
from connectors.edi.errors import EdiError, EdiFormatError, Position
from connectors.edi.parse import ParsedSet, ParseResult, parse
from connectors.edi.reader import Delimiters, FilePart, Interchange, read, split
from connectors.edi.writer import ControlNumbers, InMemoryControlNumbers, PartnerSettings, write_interchange

__all__ = [
    "ControlNumbers",
    "Delimiters",
    "EdiError",
    "EdiFormatError",
    "FilePart",
    "InMemoryControlNumbers",
    "Interchange",
    "ParseResult",
    "ParsedSet",
    "PartnerSettings",
    "Position",
    "acknowledge",
    "group_acknowledgement",
    "parse",
    "read",
    "reply_settings",
    "split",
    "write_interchange",
]
