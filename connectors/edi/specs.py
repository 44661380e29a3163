"""Transaction set specifications, as data: segments and their elements, and each set's structure.

The element rules follow X12 004010 (types, lengths, mandatory elements); code lists are given
only where the list is closed and matters to Baton (time zones, acknowledgement codes, tender
answers), so a partner's legitimate but unusual code is never refused on a list we guessed.
Conditional (X) elements are optional here: the paired-element syntax notes are not checked.
"""

from __future__ import annotations

from dataclasses import dataclass

ElementType = str  # AN, ID, N0-N9, R, DT, TM, or C (composite)


@dataclass(frozen=True, slots=True)
class ElementRule:
    required: bool
    type: ElementType
    min: int
    max: int
    codes: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class SegmentDefinition:
    id: str
    name: str
    elements: tuple[ElementRule, ...]


@dataclass(frozen=True, slots=True)
class SegmentUse:
    """A segment's place in a set: mandatory or not, and how often it may repeat there."""

    id: str
    required: bool
    max_use: int


@dataclass(frozen=True, slots=True)
class LoopUse:
    """A loop; its first child is the segment that starts each repetition."""

    id: str
    required: bool
    max_repeat: int
    children: tuple[SegmentUse | LoopUse, ...]

    @property
    def trigger(self) -> str:
        first = self.children[0]
        assert isinstance(first, SegmentUse)
        return first.id


Node = SegmentUse | LoopUse


@dataclass(frozen=True, slots=True)
class TransactionSpec:
    code: str
    name: str
    functional_id: str
    body: tuple[Node, ...]

    def segment_ids(self) -> frozenset[str]:
        found: set[str] = {"ST", "SE"}
        stack: list[Node] = list(self.body)
        while stack:
            node = stack.pop()
            if isinstance(node, SegmentUse):
                found.add(node.id)
            else:
                stack.extend(node.children)
        return frozenset(found)


TIME_CODES = frozenset(
    ["AD", "AS", "AT", "CD", "CS", "CT", "ED", "ES", "ET", "GM", "HD", "HS", "HT", "LT", "MD", "MS", "MT", "ND", "NS", "NT", "PD", "PS"]
    + ["PT", "TD", "TS", "TT", "UT"]
    + [f"{hour:02d}" for hour in range(1, 25)]
)
CODE_LISTS: dict[str, frozenset[str]] = {
    "time_code": TIME_CODES,
    "reservation_action": frozenset({"A", "D", "R"}),
    "set_ack": frozenset({"A", "E", "M", "R", "W", "X"}),
    "group_ack": frozenset({"A", "E", "M", "P", "R", "W", "X"}),
    "segment_error": frozenset({"1", "2", "3", "4", "5", "6", "7", "8", "I4", "I6", "I7", "I8", "I9"}),
    "element_error": frozenset({str(code) for code in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 12, 13)} | {"I10", "I11", "I12", "I13", "I6", "I9"}),
    "direction_ew": frozenset({"E", "W"}),
    "direction_ns": frozenset({"N", "S"}),
}


def _element(text: str) -> ElementRule:
    parts = text.split()
    required = parts[0] == "M"
    if parts[1] == "C":
        return ElementRule(required, "C", 0, 0)
    codes = CODE_LISTS[parts[4]] if len(parts) > 4 else None
    return ElementRule(required, parts[1], int(parts[2]), int(parts[3]), codes)


def _segment(segment_id: str, name: str, *elements: str) -> SegmentDefinition:
    return SegmentDefinition(segment_id, name, tuple(_element(text) for text in elements))


_O_AN = "O AN 1 80"
_REF = ("M ID 2 3", "O AN 1 30", "O AN 1 80", "O DT 8 8", "O TM 4 8", "O ID 2 2 time_code", "O C")

# fmt: off
SEGMENTS: dict[str, SegmentDefinition] = {
    definition.id: definition
    for definition in (
        _segment("ST", "Transaction set header", "M ID 3 3", "M AN 4 9", "O AN 1 35"),
        _segment("SE", "Transaction set trailer", "M N0 1 10", "M AN 4 9"),
        # Load tender, tender response, status, invoice
        _segment("B1", "Beginning segment for booking", "M ID 2 4", "M AN 1 30", "O DT 8 8", "O ID 1 1 reservation_action", "O ID 1 3"),
        _segment(
            "B2", "Beginning segment for shipment information", "O ID 2 2", "O ID 2 4", "O AN 2 9", "O AN 1 30", "O ID 1 1", "M ID 2 2",
            "O ID 1 1", "O N0 1 3", "O ID 2 3", "O AN 1 30", "O DT 8 8", "O ID 2 2",
        ),
        _segment("B2A", "Set purpose", "M ID 2 2", "O ID 2 2"),
        _segment("B3", "Beginning segment for carrier's invoice", "O ID 1 1", "M AN 1 22", "O AN 1 30", "M ID 2 2", "O ID 1 1", "M DT 8 8",
                 "M N2 1 12", "O ID 1 1", "O DT 8 8", "O ID 3 3", "M ID 2 4", "O DT 8 8", "O ID 2 2", "O ID 1 1", "O ID 1 1"),
        _segment("B10", "Beginning segment for status details", "M AN 1 30", "M AN 1 30", "M ID 2 4", "O N0 1 3", "O ID 2 3", "O AN 1 30", "O ID 1 1"),
        _segment("L11", "Business instructions and reference number", "O AN 1 30", "O ID 2 3", "O AN 1 80"),
        _segment("N9", "Reference identification", *_REF),
        _segment("REF", "Reference identification", "M ID 2 3", "O AN 1 30", "O AN 1 80", "O C"),
        _segment("G62", "Date/time", "O ID 2 2", "O DT 8 8", "O ID 1 2", "O TM 4 8", "O ID 2 2 time_code"),
        _segment("DTM", "Date/time reference", "M ID 3 3", "O DT 8 8", "O TM 4 8", "O ID 2 2 time_code", "O ID 2 3", "O AN 1 35"),
        _segment("NTE", "Note", "O ID 3 3", "M AN 1 80"),
        _segment("K1", "Remarks", "M AN 1 30", "O AN 1 30"),
        _segment("MS3", "Interline information", "M ID 2 4", "M ID 1 2", "O AN 2 30", "O ID 1 2", "O ID 2 2"),
        _segment("AT5", "Bill of lading handling requirements", "O ID 2 3", "O ID 2 10", "O AN 2 80", "O R 1 8", "O ID 2 2", "O R 1 8"),
        _segment("PLD", "Pallet information", "M N0 1 3", "O ID 1 1", "O ID 1 2", "O R 1 10"),
        _segment("LH6", "Hazardous certification", "O AN 1 60", "O ID 1 1", "O ID 3 3", "O AN 2 25"),
        _segment("N1", "Name", "M ID 2 3", "O AN 1 60", "O ID 1 2", "O AN 2 80", "O ID 2 2", "O ID 2 3"),
        _segment("N2", "Additional name information", "M AN 1 60", "O AN 1 60"),
        _segment("N3", "Address information", "M AN 1 55", "O AN 1 55"),
        _segment("N4", "Geographic location", "O AN 2 30", "O ID 2 2", "O ID 3 15", "O ID 2 3", "O ID 1 2", "O AN 1 30", "O ID 2 3"),
        _segment("G61", "Contact", "M ID 2 2", "M AN 1 60", "O ID 2 2", "O AN 1 80", "O AN 1 20"),
        _segment("PER", "Contact", "M ID 2 2", "O AN 1 60", "O ID 2 2", "O AN 1 80", "O ID 2 2", "O AN 1 80", "O ID 2 2", "O AN 1 80", "O AN 1 20"),
        _segment(
            "N7", "Equipment details", "O AN 1 4", "M AN 1 10", "O R 1 10", "O ID 1 2", "O N0 3 8", "O N0 2 6", "O N0 1 6", "O R 1 8",
            "O ID 1 1", "O ID 1 1", "O ID 2 2", "O ID 2 4", "O AN 3 6", "O AN 1 3", "O N0 4 5", "O ID 1 1", "O ID 1 1", "O ID 1 1",
            "O ID 2 2", "O N0 4 8", "O N0 4 8", "O ID 4 4", "O ID 2 4", "O ID 1 4",
        ),
        _segment("N7A", "Accessorial equipment details", _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN),
        _segment("N7B", "Additional equipment details", _O_AN, _O_AN, _O_AN, _O_AN),
        _segment("MEA", "Measurements", "O ID 2 2", "O ID 1 3", "O R 1 20", "O C", "O R 1 20", "O R 1 20", "O ID 2 2", "O AN 1 15", "O ID 2 2", "O ID 1 2"),
        _segment("M7", "Seal numbers", "M AN 2 15", "O AN 2 15", "O AN 2 15", "O AN 2 15", "O ID 2 2"),
        _segment("S5", "Stop off details", "M N0 1 3", "M ID 2 2", "O R 1 10", "O ID 1 1", "O R 1 10", "O ID 2 2", "O R 1 8", "O ID 1 1",
                 "O AN 2 80", "O ID 6 9", "O ID 2 2"),
        _segment("AT8", "Shipment weight, packaging and quantity", "O ID 1 2", "O ID 1 1", "O R 1 10", "O N0 1 7", "O N0 1 7", "O ID 1 1", "O R 1 8"),
        _segment("LAD", "Lading detail", _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN),
        _segment("OID", "Order identification detail", "O AN 1 30", "O AN 1 22", "O AN 1 30", "O ID 2 2", "O R 1 15", "O ID 1 2", "O R 1 10",
                 "O ID 1 1", "O R 1 8"),
        _segment("L5", "Description, marks and numbers", "O N0 1 3", "O AN 1 50", "O AN 1 30", "O ID 1 1", "O AN 3 5", "O AN 1 48",
                 "O ID 1 2", "O ID 1 1", "O AN 1 30", "O ID 1 1"),
        _segment("LH1", "Hazardous identification", "M ID 2 2", "M N0 1 7", "O AN 6 6", "O AN 1 6", "O AN 1 30", "O ID 2 2", "O R 1 15",
                 "O ID 1 1", "O ID 3 3", "O ID 1 3", "O AN 1 12"),
        _segment("LH2", "Hazardous classification", "O AN 1 7", "O ID 1 1", "O ID 2 4", "O ID 2 4", "O ID 2 4", "O ID 2 2", "O R 1 10",
                 "O ID 1 1", "O R 1 10", "O R 1 10"),
        _segment("LH3", "Hazardous material shipping name", "O AN 1 25", "O ID 1 1", "O ID 1 1", "O ID 2 2"),
        _segment("LFH", "Freeform hazardous material information", "M ID 3 3", "M AN 2 25", "O AN 1 25", "O ID 1 1", "O R 1 15", "O R 1 15", "O ID 1 1"),
        _segment("LEP", "EPA required data", "O ID 2 3", "O AN 1 25", "O ID 2 2", "O AN 1 12"),
        _segment("LH4", "Canadian dangerous requirements", _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN),
        _segment("LHT", "Transborder hazardous requirements", _O_AN, _O_AN, _O_AN),
        _segment("LHR", "Hazardous material identifying reference numbers", _O_AN, _O_AN, _O_AN),
        _segment("LHE", "Empty equipment hazardous material", _O_AN, _O_AN, _O_AN, _O_AN),
        _segment("L3", "Total weight and charges", "O R 1 10", "O ID 1 2", "O R 1 9", "O ID 2 2", "O N2 1 12", "O N2 1 9", "O N2 1 12",
                 "O ID 3 3", "O R 1 8", "O ID 1 1", "O N0 1 7", "O ID 1 1", "O AN 1 7", "O N2 2 12", "O ID 2 2"),
        _segment("LX", "Assigned number", "M N0 1 6"),
        _segment("AT7", "Shipment status details", "O ID 2 2", "O ID 2 2", "O ID 2 2", "O ID 2 2", "O DT 8 8", "O TM 4 8", "O ID 2 2 time_code"),
        _segment("MS1", "Equipment, shipment or real property location", "O AN 2 30", "O ID 2 2", "O ID 2 3", "O AN 7 7", "O AN 7 7",
                 "O ID 1 1 direction_ew", "O ID 1 1 direction_ns"),
        _segment("MS2", "Equipment or container owner and type", "O ID 2 4", "O AN 1 10", "O ID 2 2", "O N0 1 1"),
        _segment("MAN", "Marks and numbers", "M ID 1 2", "M AN 1 48", "O AN 1 48", "O ID 1 2", "O AN 1 48", "O AN 1 48"),
        _segment("Q7", "Lading exception status", "M ID 1 1", "O ID 3 5", "O N0 1 7"),
        _segment("C3", "Currency", "M ID 3 3", "O R 4 10", "O ID 3 3", "O ID 3 3"),
        _segment("ITD", "Terms of sale", _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN),
        _segment("R3", "Carrier detail", "M ID 2 4", "M ID 1 2", "O ID 2 4", "O ID 1 2", "O N2 1 15", "O DT 8 8", "O ID 2 2"),
        _segment("H3", "Special handling instructions", "O ID 2 3", "O AN 2 30", "O ID 2 3", "O ID 2 2", "O ID 2 3"),
        _segment("L0", "Line item quantity and weight", "O N0 1 3", "O R 1 15", "O ID 2 2", "O R 1 10", "O ID 1 2", "O R 1 8", "O ID 1 1",
                 "O N0 1 7", "O AN 3 5", "O N0 1 15", "O ID 1 1", "O ID 3 3", "O N0 1 7"),
        _segment("L1", "Rate and charges", "O N0 1 3", "O R 1 15", "O ID 2 2", "O N2 1 12", "O N2 1 9", "O N2 1 12", "O AN 1 9", "O ID 3 3",
                 "O ID 1 3", "O ID 1 1", "O ID 1 1", "O AN 2 25", "O ID 1 1", "O N2 2 12", "O ID 2 2", "O ID 1 1", "O R 1 11", "O ID 2 2",
                 "O R 1 10", "O ID 3 3", "O N2 1 15"),
        _segment("H1", "Hazardous material", "M AN 4 10", _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN),
        _segment("H2", "Additional hazardous material description", "M AN 1 30", _O_AN),
        _segment("L4", "Measurement", "O R 1 8", "O R 1 8", "O R 1 8", "O ID 1 1", "O N0 1 7", "O ID 1 1"),
        _segment("L7", "Tariff reference", "O N0 1 3", "O ID 2 4", "O AN 1 10", "O AN 1 2", "O AN 1 16", "O AN 1 2", "O AN 2 5", "O AN 1 4",
                 "O AN 1 5", "O DT 8 8", "O AN 1 6", "O AN 1 2", "O N0 1 5", "O ID 1 1", "O AN 2 30", "O ID 2 2"),
        # Ship notice
        _segment("BSN", "Beginning segment for ship notice", "M ID 2 2", "M AN 2 30", "M DT 8 8", "M TM 4 8", "O ID 4 4", "O ID 2 2", "O ID 3 3"),
        _segment("HL", "Hierarchical level", "M AN 1 12", "O AN 1 12", "M ID 1 2", "O ID 1 1"),
        _segment("LIN", "Item identification", "O AN 1 20", "M ID 2 2", "M AN 1 48", *(["O ID 2 2", "O AN 1 48"] * 14)),
        _segment("SN1", "Item detail (shipment)", "O AN 1 20", "M R 1 10", "M ID 2 2", "O R 1 15", "O R 1 15", "O ID 2 2", "O ID 2 2", "O ID 2 2"),
        _segment("SLN", "Subline item detail", _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN,
                 _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN),
        _segment("PRF", "Purchase order reference", "M AN 1 22", "O AN 1 30", "O AN 1 8", "O DT 8 8", "O AN 1 30", "O ID 2 2"),
        _segment("PO4", "Item physical details", "O N0 1 6", "O R 1 8", "O ID 2 2", "O AN 3 5", "O ID 1 2", "O R 1 9", "O ID 2 2", "O R 1 9",
                 "O ID 2 2", "O R 1 8", "O R 1 8", "O R 1 8", "O ID 2 2", "O AN 1 48", "O AN 1 48", "O AN 1 48", "O N0 1 6", "O AN 1 30"),
        _segment("PID", "Product/item description", "M ID 1 1", "O ID 2 3", "O ID 2 2", "O AN 1 12", "O AN 1 80", "O ID 2 2", "O ID 1 1",
                 "O AN 1 15", "O ID 2 3"),
        _segment("PKG", "Marking, packaging, loading", "O ID 1 1", "O ID 2 3", "O ID 2 2", "O AN 1 7", "O AN 1 80", "O ID 2 2"),
        _segment("PAL", "Pallet information", _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN, _O_AN),
        _segment("TD1", "Carrier details (quantity and weight)", "O AN 3 5", "O N0 1 7", "O ID 1 1", "O AN 1 30", "O AN 1 50", "O ID 1 2",
                 "O R 1 10", "O ID 2 2", "O R 1 8", "O ID 2 2"),
        _segment("TD5", "Carrier details (routing sequence/transit time)", "O ID 1 2", "O ID 1 2", "O AN 2 80", "O ID 1 2", "O AN 1 35",
                 "O ID 2 2", "O ID 1 2", "O AN 1 30", "O ID 2 2", "O ID 2 2", "O ID 2 2", "O ID 2 2", "O ID 2 3", "O ID 2 3", "O ID 1 2"),
        _segment("TD3", "Carrier details (equipment)", "O ID 2 2", "O AN 1 4", "O AN 1 10", "O ID 1 2", "O R 1 10", "O ID 2 2", "O R 1 8",
                 "O ID 2 2", "O ID 2 2", "O ID 4 4"),
        _segment("TD4", "Carrier details (special handling, hazardous materials)", "O ID 2 3", "O ID 1 3", "O AN 1 10", "O AN 1 80", "O ID 1 1"),
        _segment("FOB", "F.O.B. related instructions", "M ID 2 2", "O ID 2 2", "O AN 1 80", "O ID 2 2", "O ID 3 3", "O ID 2 2", "O AN 1 80",
                 "O ID 2 2", "O ID 1 1"),
        _segment("CTT", "Transaction totals", "M N0 1 6", "O R 1 10", "O R 1 10", "O ID 2 2", "O R 1 8", "O ID 2 2", "O AN 1 80"),
        # Warehouse
        _segment("W05", "Shipping order identification", "M ID 1 1", "M AN 1 22", "O AN 1 22", "O N0 5 6", "O AN 1 22", "O ID 2 2", "O ID 1 2"),
        _segment("W06", "Warehouse shipment identification", "M ID 1 1", "O AN 1 22", "O DT 8 8", "O AN 1 30", "O AN 1 30", "O AN 1 22",
                 "O AN 1 22", "O N0 5 6", "O TM 4 8", "O ID 2 2", "O ID 1 2", "O ID 2 2"),
        _segment("W17", "Warehouse receipt identification", "M ID 1 1", "M DT 8 8", "M AN 1 12", "O AN 1 22", "O AN 1 30", "O TM 4 8",
                 "O AN 1 22", "O N0 5 6", "O ID 2 2", "O ID 1 2"),
        _segment("W66", "Warehouse carrier information", "M ID 2 2", "M ID 1 2", "O ID 2 2", "O AN 1 80", "O AN 1 35", "O R 1 9", "O N2 1 9",
                 "O N2 1 9", "O N0 1 3", "O ID 2 4", "O ID 1 1"),
        _segment("W27", "Carrier detail", "M ID 1 2", "O ID 2 4", "O AN 1 35", "O ID 2 2", "O ID 2 2", "O AN 1 4", "O AN 1 10", "O ID 2 2",
                 "O ID 2 3", "O AN 1 80"),
        _segment("W10", "Warehouse shipment information", "M ID 3 3", "O N0 1 7", "O R 1 10", "O ID 1 2", "O ID 1 1", "O R 1 8", "O ID 1 1"),
        _segment("W01", "Line item detail (warehouse)", "M R 1 15", "M ID 2 2", "O AN 12 12", "O ID 2 2", "O AN 1 48", "O ID 2 2", "O AN 1 48",
                 "O AN 2 5", "O ID 1 3", "O ID 1 1", "O AN 1 30", "O ID 2 2", "O ID 2 2", "O AN 1 48", "O ID 1 1", "O ID 2 2"),
        _segment("W04", "Item detail total", "M R 1 10", "M ID 2 2", "O AN 12 12", "O ID 2 2", "O AN 1 48", "O ID 2 2", "O AN 1 48",
                 "O AN 1 12", "O ID 2 2", "O AN 1 48", "O AN 1 30", "O ID 2 2", "O AN 1 48", "O ID 1 1"),
        _segment("W07", "Item detail for stock receipt", "M R 1 10", "M ID 2 2", "O AN 12 12", "O ID 2 2", "O AN 1 48", "O AN 1 12",
                 "O ID 2 2", "O AN 1 48", "O ID 2 2", "O AN 1 48", "O ID 1 1"),
        _segment("W12", "Warehouse item detail", "M ID 2 2", "O R 1 15", "O R 1 10", "O R 1 9", "O ID 2 2", "O AN 12 12", "O ID 2 2",
                 "O AN 1 48", "O AN 1 12", "O R 1 10", "O ID 1 2", "O ID 1 1", "O ID 2 2", "O ID 1 1", "O R 1 10", "O ID 2 2", "O AN 1 48",
                 "O ID 2 2", "O AN 1 30", "O AN 1 30", "O ID 2 2", "O AN 1 48"),
        _segment("W03", "Total shipment information", "M R 1 10", "O R 1 10", "O ID 2 2", "O R 1 8", "O ID 2 2", "O N0 1 7", "O ID 2 2"),
        _segment("W14", "Total receipt information", "M R 1 15", "O R 1 10", "O R 1 10", "O R 1 10", "O R 1 10"),
        _segment("W08", "Warehouse carrier information", "O ID 2 2", "O AN 1 4", "O AN 1 10", "O DT 8 8", "O AN 1 35", "O ID 2 4", "O N0 1 7", "O ID 2 2"),
        _segment("W20", "Line item detail (miscellaneous)", "O N0 1 6", "O R 1 8", "O ID 2 2", "O R 1 9", "O ID 1 2", "O ID 1 1", "O R 1 8",
                 "O ID 2 2", "O R 1 9", "O N0 1 6"),
        _segment("W76", "Total shipping order", "M R 1 15", "O R 1 10", "O ID 2 2", "O R 1 8", "O ID 2 2", "O ID 1 2"),
        _segment("G69", "Line item detail description", "M AN 1 45"),
        _segment("AMT", "Monetary amount", "M ID 1 3", "M R 1 18", "O ID 1 1"),
        # Inventory inquiry/advice
        _segment("BIA", "Beginning segment for inventory inquiry/advice", "M ID 2 2", "M ID 2 2", "M AN 1 30", "M DT 8 8", "O TM 4 8",
                 "O ID 1 2"),
        _segment("QTY", "Quantity", "M ID 2 2", "O R 1 15", "O C", "O AN 1 30"),
        # Acknowledgements
        _segment("AK1", "Functional group response header", "M ID 2 2", "M N0 1 9", "O AN 1 12"),
        _segment("AK2", "Transaction set response header", "M ID 3 3", "M AN 4 9", "O AN 1 35"),
        _segment("AK3", "Data segment note", "M ID 2 3", "M N0 1 10", "O AN 1 6", "O ID 1 3 segment_error"),
        _segment("AK4", "Data element note", "M C", "O N0 1 4", "M ID 1 3 element_error", "O AN 1 99"),
        _segment("AK5", "Transaction set response trailer", "M ID 1 1 set_ack", "O ID 1 3", "O ID 1 3", "O ID 1 3", "O ID 1 3", "O ID 1 3"),
        _segment("AK9", "Functional group response trailer", "M ID 1 1 group_ack", "M N0 1 6", "M N0 1 6", "M N0 1 6", "O ID 1 3", "O ID 1 3",
                 "O ID 1 3", "O ID 1 3", "O ID 1 3"),
        # AK303/IK303 are AN 1/4 in the standard, but acknowledgements routinely name implementation
        # guide loops such as 2010BB, so up to 6 characters are accepted.
        _segment("IK3", "Error identification", "M ID 2 3", "M N0 1 10", "O AN 1 6", "M ID 1 3 segment_error"),
        _segment("IK4", "Implementation data element note", "M C", "O N0 1 4", "M ID 1 3 element_error", "O AN 1 99"),
        _segment("IK5", "Implementation transaction set response trailer", "M ID 1 1 set_ack", "O ID 1 3", "O ID 1 3", "O ID 1 3", "O ID 1 3",
                 "O ID 1 3"),
        _segment("CTX", "Context", "M C", "O ID 2 3", "O N0 1 10", "O AN 1 4", "O C", "O C"),
    )
}
# fmt: on


def _u(segment_id: str, requirement: str = "O", max_use: int = 1) -> SegmentUse:
    return SegmentUse(segment_id, requirement == "M", max_use)


def _loop(loop_id: str, requirement: str, max_repeat: int, *children: Node) -> LoopUse:
    return LoopUse(loop_id, requirement == "M", max_repeat, children)


def _party_loop(loop_id: str, max_repeat: int, *extra: Node) -> LoopUse:
    return _loop(loop_id, "O", max_repeat, _u("N1", "M"), _u("N2", "O", 2), _u("N3", "O", 2), _u("N4"), *extra)


# fmt: off
_HAZMAT = _loop(
    "0330", "O", 100, _u("LH1", "M"), _u("LH2", "O", 4), _u("LH3", "O", 10), _u("LFH", "O", 20), _u("LEP", "O", 3), _u("LH4"),
    _u("LHT", "O", 3), _u("LHR", "O", 5), _u("PER", "O", 5), _u("LHE"),
)
# fmt: on

# fmt: off
SPECS: dict[str, TransactionSpec] = {
    spec.code: spec
    for spec in (
        TransactionSpec(
            "204", "Motor carrier load tender", "SM",
            (
                _u("B2", "M"), _u("B2A", "M"), _u("L11", "O", 50), _u("G62"), _u("MS3"), _u("AT5", "O", 6), _u("PLD"), _u("LH6", "O", 6),
                _u("NTE", "O", 10),
                _party_loop("0100", 5, _u("L11", "O", 5), _u("G61", "O", 3)),
                _loop("0200", "O", 10, _u("N7", "M"), _u("N7A"), _u("N7B"), _u("MEA"), _u("M7", "O", 2)),
                _loop(
                    "0300", "M", 999, _u("S5", "M"), _u("L11", "O", 50), _u("G62", "O", 2), _u("AT8"), _u("LAD", "O", 999),
                    _u("AT5", "O", 6), _u("PLD"), _u("NTE", "O", 20),
                    _party_loop("0310", 1, _u("G61", "O", 3)),
                    _loop("0320", "O", 99, _u("L5", "M"), _u("AT8"), _loop("0325", "O", 1, _u("G61", "M")), _HAZMAT),
                    _loop("0350", "O", 999, _u("OID", "M"), _u("G62", "O", 2), _u("LAD", "O", 999),
                          _loop("0360", "O", 99, _u("L5", "M"), _u("AT8"), _loop("0365", "O", 1, _u("G61", "M")), _HAZMAT)),
                    _loop("0370", "O", 10, _u("N7", "M"), _u("N7A"), _u("N7B"), _u("MEA"), _u("M7", "O", 2)),
                ),
                _u("L3"),
            ),
        ),
        TransactionSpec("990", "Response to a load tender", "GF", (_u("B1", "M"), _u("N9"), _u("K1", "O", 10))),
        TransactionSpec(
            "214", "Transportation carrier shipment status", "QM",
            (
                _u("B10", "M"), _u("L11", "O", 10), _u("MAN", "O", 10), _u("Q7", "O", 10), _u("K1", "O", 10), _u("AT8", "O", 10),
                _party_loop("0100", 10, _u("G61"), _u("G62"), _u("L11", "O", 10)),
                _loop("0200", "O", 10, _u("MS3", "M"), _u("LH6")),
                _loop(
                    "0205", "O", 999999, _u("LX", "M"),
                    _loop("0210", "O", 10, _u("AT7", "M"), _u("MS1"), _u("MS2"), _u("M7", "O", 5)),
                    _u("L11", "O", 10), _u("MAN", "O", 9999), _u("Q7", "O", 10), _u("K1", "O", 10), _u("AT5", "O", 10), _u("AT8", "O", 10),
                    _party_loop("0220", 10, _u("G62"), _u("L11", "O", 10)),
                ),
            ),
        ),
        TransactionSpec(
            "210", "Motor carrier freight details and invoice", "IM",
            (
                _u("B3", "M"), _u("C3"), _u("ITD"), _u("N9", "O", 300), _u("G62", "O", 6), _u("R3", "O", 12), _u("H3", "O", 6), _u("K1", "O", 10),
                _party_loop("0100", 10, _u("N9", "O", 5)),
                _loop("0200", "O", 10, _u("N7", "M"), _u("M7", "O", 2)),
                _loop("0300", "O", 999, _u("S5", "M"), _u("N9", "O", 10), _u("G62", "O", 2), _u("H3", "O", 6),
                      _party_loop("0310", 2, _u("N9", "O", 10))),
                _loop(
                    "0400", "O", 9999, _u("LX", "M"), _u("N9", "O", 5), _u("L5", "O", 30), _u("H1", "O", 3), _u("H2", "O", 2),
                    _u("L0", "O", 10), _u("L1", "O", 50), _u("L4", "O", 10), _u("L7", "O", 10), _u("K1", "O", 10),
                ),
                _u("L3", "M"),
            ),
        ),
        TransactionSpec(
            "856", "Ship notice/manifest", "SH",
            (
                _u("BSN", "M"), _u("DTM", "O", 10),
                _loop(
                    "HL", "M", 200000, _u("HL", "M"), _u("LIN"), _u("SN1"), _u("SLN", "O", 1000), _u("PRF"), _u("PO4"), _u("PID", "O", 200),
                    _u("MEA", "O", 40), _u("PKG", "O", 25), _u("TD1", "O", 20), _u("TD5", "O", 10), _u("TD3", "O", 12), _u("TD4", "O", 5),
                    _u("REF", "O", 200), _u("PER", "O", 3), _u("MAN", "O", 10), _u("DTM", "O", 10), _u("FOB"), _u("PAL"),
                    _loop("N1", "O", 200, _u("N1", "M"), _u("N2", "O", 2), _u("N3", "O", 2), _u("N4"), _u("REF", "O", 12), _u("PER", "O", 3),
                          _u("FOB")),
                ),
                _u("CTT"),
            ),
        ),
        TransactionSpec(
            "940", "Warehouse shipping order", "OW",
            (
                _u("W05", "M"), _party_loop("0100", 10, _u("PER", "O", 3)), _u("N9", "O", 10), _u("G62", "O", 10), _u("NTE", "O", 10),
                _u("W66", "O"),
                _loop("0200", "O", 9999, _u("LX", "M"),
                      _loop("0210", "M", 9999, _u("W01", "M"), _u("G69", "O", 5), _u("N9", "O", 200), _u("W20"), _u("AMT", "O", 10))),
                _u("W76"),
            ),
        ),
        TransactionSpec(
            "945", "Warehouse shipping advice", "SW",
            (
                _u("W06", "M"), _party_loop("0100", 10, _u("PER", "O", 3)), _u("N9", "O", 30), _u("G62", "O", 10), _u("W27", "M"),
                _u("W10", "O", 1),
                _loop("0200", "O", 9999, _u("LX", "M"), _u("MAN", "O", 10), _u("PAL"), _u("N9", "O", 200),
                      _loop("0210", "M", 9999, _u("W12", "M"), _u("G69", "O", 5), _u("N9", "O", 200), _u("W20"), _u("AMT", "O", 10))),
                _u("W03", "M"),
            ),
        ),
        TransactionSpec(
            "943", "Warehouse stock transfer shipment advice", "AR",
            (
                _u("W06", "M"), _party_loop("0100", 10, _u("PER", "O", 3)), _u("N9", "O", 10), _u("G62", "O", 5), _u("W27", "M"), _u("W10"),
                _loop("0200", "M", 9999, _u("W04", "M"), _u("G69", "O", 5), _u("N9", "O", 200), _u("W20"), _u("AMT", "O", 10)),
                _u("W03", "M"),
            ),
        ),
        TransactionSpec(
            "944", "Warehouse stock transfer receipt advice", "RE",
            (
                _u("W17", "M"), _party_loop("0100", 10, _u("PER", "O", 3)), _u("N9", "O", 10), _u("G62", "O", 10), _u("W08"),
                _loop("0200", "M", 9999, _u("W07", "M"), _u("G69", "O", 5), _u("N9", "O", 200), _u("W20"), _u("AMT", "O", 10)),
                _u("W14", "M"),
            ),
        ),
        TransactionSpec(
            "846", "Inventory inquiry/advice", "IB",
            (
                _u("BIA", "M"), _u("REF", "O", 12), _u("PER", "O", 3), _u("MEA", "O", 10), _u("DTM", "O", 10),
                _party_loop("0100", 200, _u("REF", "O", 12), _u("PER", "O", 3)),
                _loop(
                    "0200", "O", 10000, _u("LIN", "M"), _u("PID", "O", 200), _u("PO4"), _u("MEA", "O", 40), _u("DTM", "O", 10),
                    _u("REF", "O", 12),
                    _loop("0210", "O", 99, _u("QTY", "M"), _u("DTM")),
                    _party_loop("0220", 200, _u("REF", "O", 12), _u("PER", "O", 3), _u("QTY", "O", 99), _u("DTM")),
                ),
                _u("CTT"),
            ),
        ),
        TransactionSpec(
            "997", "Functional acknowledgment", "FA",
            (
                _u("AK1", "M"),
                _loop("AK2", "O", 999999, _u("AK2", "M"), _loop("AK3", "O", 999999, _u("AK3", "M"), _u("AK4", "O", 99)), _u("AK5", "M")),
                _u("AK9", "M"),
            ),
        ),
        TransactionSpec(
            "999", "Implementation acknowledgment", "FA",
            (
                _u("AK1", "M"),
                _loop(
                    "2000", "O", 999999, _u("AK2", "M"),
                    _loop("2100", "O", 999999, _u("IK3", "M"), _u("CTX", "O", 10), _loop("2110", "O", 99, _u("IK4", "M"), _u("CTX", "O", 10))),
                    _u("IK5", "M"),
                ),
                _u("AK9", "M"),
            ),
        ),
    )
}
# fmt: on
