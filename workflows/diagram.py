"""A definition's steps as an SVG diagram, laid out on the server.

Steps go left to right in layers (the longest forward path from the start), one box per step
with its kind, arrows for every transition (next, default, timeouts, rejections, branches).
Arrows that go back (loops) run under the boxes. The nodes and edges come from
`selectors.definition_diagram`, which tolerates an invalid spec. The SVG is rendered by a
Django template, so every name and label from the spec is escaped: no markup is built here.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.template.loader import render_to_string

from workflows.selectors import definition_diagram

NODE_W = 200
NODE_H = 64
GAP_X = 128
GAP_Y = 26
PAD = 16
START_W = 54
LOOP_GAP = 14

KINDS: dict[str, tuple[str, str]] = {
    # kind: (label, icon) – the icon is a short text glyph, drawn in a coloured circle
    "connector": ("Connector", "⇄"),
    "transform": ("Transform", "ƒ"),
    "decision": ("Decision", "?"),
    "wait_event": ("Wait for event", "⌁"),
    "wait_until": ("Wait until", "◷"),
    "approval": ("Approval", "✓"),
    "parallel": ("Parallel", "∥"),
    "child_workflow": ("Child workflow", "↳"),
    "notify": ("Notify", "✉"),
    "end": ("End", "■"),
}
# How each kind of edge of `selectors.definition_diagram` is drawn.
EDGE_STYLES = {"case": "branch", "branch": "branch", "on_timeout": "exception", "on_reject": "exception", "compensation": "exception"}
LABEL_MAX = 15
NAME_MAX = 18


@dataclass
class DiagramNode:
    id: str
    kind: str
    kind_label: str
    icon: str
    name: str
    name_lines: list[str]
    x: float = 0
    y: float = 0
    w: float = NODE_W
    h: float = NODE_H
    is_start: bool = False
    layer: int = 0
    transitions: list[tuple[str, str]] = field(default_factory=list)  # (label, target name) for the text view

    @property
    def css_kind(self) -> str:
        return self.kind if self.kind in KINDS else "other"

    @property
    def text_x(self) -> float:
        return self.x + 44

    @property
    def icon_cx(self) -> float:
        return self.x + 22

    @property
    def cy(self) -> float:
        return self.y + self.h / 2

    @property
    def kind_y(self) -> float:
        return self.y + (20 if len(self.name_lines) > 1 else 25)

    @property
    def name_y(self) -> float:
        return self.kind_y + 18


@dataclass
class DiagramEdge:
    source: str
    target: str
    label: str
    kind: str  # "next", "branch", "exception" (timeout, rejected, error…) or "start"
    back: bool = False
    ranks: bool = True  # whether the arrow places its target right of its source
    full_label: str = ""
    path: str = ""
    label_x: float = 0
    label_y: float = 0

    @property
    def label_w(self) -> float:
        return 6.4 * len(self.label) + 14

    @property
    def label_box_x(self) -> float:
        return self.label_x - self.label_w / 2

    @property
    def label_box_y(self) -> float:
        return self.label_y - 9


@dataclass
class Diagram:
    uid: str
    nodes: list[DiagramNode]
    edges: list[DiagramEdge]
    width: float
    height: float
    start_x: float = 0
    start_y: float = 0
    triggers: list[str] = field(default_factory=list)

    @property
    def start_box_y(self) -> float:
        return self.start_y - 14

    @property
    def start_text_x(self) -> float:
        return self.start_x + START_W / 2

    @property
    def summary(self) -> str:
        kinds = sorted({node.kind_label for node in self.nodes})
        return f"{len(self.nodes)} step{'s' if len(self.nodes) != 1 else ''}: {', '.join(kinds)}." if self.nodes else "No steps."


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _wrap(text: str, width: int) -> list[str]:
    """Up to two lines of at most `width` characters, broken between words where possible."""
    words, lines, line = text.split(), [], ""
    for word in words:
        candidate = f"{line} {word}".strip()
        if len(candidate) <= width or not line:
            line = candidate
        else:
            lines.append(line)
            line = word
    lines.append(line)
    if len(lines) > 2:
        lines = [lines[0], " ".join(lines[1:])]
    return [_short(part, width) for part in lines[:2]] or [""]


def diagram_layout(graph: dict[str, Any], *, uid: str = "wf") -> Diagram:
    """Place the nodes of `graph` (from `selectors.definition_diagram`) and route its edges."""
    nodes: dict[str, DiagramNode] = {}
    for raw in graph.get("nodes", []):
        if raw["id"] in nodes:
            continue
        kind = str(raw.get("kind") or "other")
        kind_label, icon = KINDS.get(kind, (kind.replace("_", " ").capitalize() or "Step", "•"))
        name = str(raw.get("label") or raw["id"])
        nodes[raw["id"]] = DiagramNode(
            id=raw["id"], kind=kind, kind_label=kind_label, icon=icon, name=name, name_lines=_wrap(name, NAME_MAX)
        )
    triggers = [str(trigger.get("label") or trigger.get("kind")) for trigger in graph.get("triggers", [])]
    diagram = Diagram(uid=uid, nodes=list(nodes.values()), edges=[], width=0, height=0, triggers=triggers)
    if not nodes:
        return diagram

    edges: list[DiagramEdge] = []
    for raw in graph.get("edges", []):
        source, target = raw["source"], raw["target"]
        if source not in nodes or target not in nodes:
            continue
        label = str(raw.get("label") or "")
        kind = EDGE_STYLES.get(raw.get("kind", ""), "next")
        edge = DiagramEdge(source=source, target=target, label=_short(label, LABEL_MAX), kind=kind, full_label=label)
        edge.ranks = raw.get("kind") != "compensation"
        edges.append(edge)
        nodes[source].transitions.append((label or "then", nodes[target].name))
    reached = {edge.target for edge in edges if edge.ranks}
    for edge in edges:
        if not edge.ranks and edge.target not in reached:
            edge.ranks = True  # a handler only compensation leads to sits after what it undoes

    start = next((raw["id"] for raw in graph.get("nodes", []) if raw.get("start")), next(iter(nodes)))
    nodes[start].is_start = True
    order = _depth_first_order(start, list(nodes), edges)
    _layers_assign(nodes, edges, order)
    _place(diagram, nodes, edges, order)
    _route(diagram, nodes, edges)
    diagram.nodes = sorted(nodes.values(), key=lambda node: (node.layer, node.y))
    diagram.edges = edges
    return diagram


def _depth_first_order(start: str, ids: list[str], edges: list[DiagramEdge]) -> list[str]:
    """Visit order from the start (then any step it cannot reach); marks arrows that close a loop."""
    outgoing: dict[str, list[DiagramEdge]] = {node_id: [] for node_id in ids}
    for edge in edges:
        outgoing[edge.source].append(edge)
    seen: set[str] = set()
    on_path: set[str] = set()
    order: list[str] = []

    def visit(node_id: str) -> None:
        # Iterative, so a long chain of steps cannot exhaust the recursion limit.
        stack: list[tuple[str, Iterator[DiagramEdge]]] = [(node_id, iter(outgoing[node_id]))]
        seen.add(node_id)
        on_path.add(node_id)
        order.append(node_id)
        while stack:
            current, pending = stack[-1]
            edge = next(pending, None)
            if edge is None:
                on_path.discard(current)
                stack.pop()
                continue
            if edge.target in on_path:
                edge.back = True
            elif edge.target not in seen:
                seen.add(edge.target)
                on_path.add(edge.target)
                order.append(edge.target)
                stack.append((edge.target, iter(outgoing[edge.target])))

    for node_id in [start, *ids]:
        if node_id not in seen:
            visit(node_id)
    return order


def _layers_assign(nodes: dict[str, DiagramNode], edges: list[DiagramEdge], order: list[str]) -> None:
    """Longest path over the forward arrows: a step sits right of every step that leads to it."""
    forward = [edge for edge in edges if not edge.back and edge.ranks]
    incoming: dict[str, int] = {node_id: 0 for node_id in nodes}
    for edge in forward:
        incoming[edge.target] += 1
    ready = [node_id for node_id in order if incoming[node_id] == 0]
    rank = {node_id: position for position, node_id in enumerate(order)}
    while ready:
        ready.sort(key=rank.__getitem__)
        node_id = ready.pop(0)
        for edge in forward:
            if edge.source == node_id:
                nodes[edge.target].layer = max(nodes[edge.target].layer, nodes[node_id].layer + 1)
                incoming[edge.target] -= 1
                if incoming[edge.target] == 0:
                    ready.append(edge.target)


def _place(diagram: Diagram, nodes: dict[str, DiagramNode], edges: list[DiagramEdge], order: list[str]) -> None:
    layers: dict[int, list[DiagramNode]] = {}
    rank = {node_id: position for position, node_id in enumerate(order)}
    for node_id in order:
        layers.setdefault(nodes[node_id].layer, []).append(nodes[node_id])
    predecessors: dict[str, list[str]] = {node_id: [] for node_id in nodes}
    for edge in edges:
        if not edge.back and edge.ranks:
            predecessors[edge.target].append(edge.source)
    slot: dict[str, float] = {}
    for layer in sorted(layers):
        column = layers[layer]

        def weight(node: DiagramNode) -> tuple[float, int]:
            placed = [slot[p] for p in predecessors[node.id] if p in slot]
            return (sum(placed) / len(placed) if placed else float(rank[node.id]), rank[node.id])

        column.sort(key=weight)
        for position, node in enumerate(column):
            slot[node.id] = position
    tallest = max(len(column) for column in layers.values())
    content_h = tallest * NODE_H + (tallest - 1) * GAP_Y
    left = PAD + START_W + GAP_X * 0.6
    for layer, column in layers.items():
        column_h = len(column) * NODE_H + (len(column) - 1) * GAP_Y
        top = PAD + (content_h - column_h) / 2
        for position, node in enumerate(column):
            node.x = left + layer * (NODE_W + GAP_X)
            node.y = top + position * (NODE_H + GAP_Y)
    start_node = next(node for node in nodes.values() if node.is_start)
    diagram.start_x, diagram.start_y = PAD, start_node.cy
    edges.insert(0, DiagramEdge(source="", target=start_node.id, label="", kind="start"))
    diagram.width = left + (max(layers) + 1) * (NODE_W + GAP_X) - GAP_X + PAD
    diagram.height = PAD * 2 + content_h


class _Lanes:
    """Horizontal runs for arrows that cannot go straight; two runs never share a y where they overlap."""

    def __init__(self, bottom: float) -> None:
        self.bottom = bottom
        self.depth = bottom + 6
        self.runs: list[tuple[float, float, float]] = []  # (y, x from, x to)

    def free(self, y: float, x1: float, x2: float) -> bool:
        return not any(abs(y - ry) < 9 and x1 < rx2 and rx1 < x2 for ry, rx1, rx2 in self.runs)

    def below(self, x1: float, x2: float) -> float:
        """A run under every box (loops, and skips with no room between the boxes)."""
        y = self.bottom + LOOP_GAP
        while not self.free(y, x1, x2):
            y += LOOP_GAP
        return self.take(y, x1, x2)

    def take(self, y: float, x1: float, x2: float) -> float:
        self.runs.append((y, min(x1, x2), max(x1, x2)))
        self.depth = max(self.depth, y)
        return y


def _route(diagram: Diagram, nodes: dict[str, DiagramNode], edges: list[DiagramEdge]) -> None:
    """Cubic curves from a box's right side to the next box's left; loops run under the boxes."""
    exits: dict[str, list[DiagramEdge]] = {}
    for edge in edges:
        if edge.kind != "start" and not edge.back and nodes[edge.target].layer > nodes[edge.source].layer:
            exits.setdefault(edge.source, []).append(edge)
    bottom = max(node.y + node.h for node in nodes.values())
    lanes = _Lanes(bottom)
    backs = 0
    for edge in edges:
        target = nodes[edge.target]
        if edge.kind == "start":
            sx, sy = diagram.start_x + START_W, diagram.start_y
            edge.path = f"M{sx:.1f},{sy:.1f} L{target.x - 2:.1f},{target.cy:.1f}"
            continue
        source = nodes[edge.source]
        if edge.back or target.layer <= source.layer:
            # Out to the right, down the gap between columns, back under every box, up the gap
            # before the target: the vertical runs are in gaps, so they never cross a box.
            backs += 1
            nudge = 12 + (backs % 3) * 7
            sx, sy = source.x + source.w, source.cy
            gx1, gx2 = sx + nudge, target.x - nudge
            depth = lanes.below(gx2, gx1)
            edge.path = f"M{sx:.1f},{sy:.1f} H{gx1:.1f} V{depth:.1f} H{gx2:.1f} V{target.cy:.1f} H{target.x - 2:.1f}"
            edge.label_x, edge.label_y = (gx1 + gx2) / 2, depth
            continue
        siblings = exits[edge.source]
        spread = min(10.0, (source.h - 16) / max(len(siblings), 1))
        offset = (siblings.index(edge) - (len(siblings) - 1) / 2) * spread
        sx, sy = source.x + source.w, source.cy + offset
        tx, ty = target.x - 2, target.cy
        x1, x2 = sx + GAP_X / 2, tx - GAP_X / 2
        between = [node for node in nodes.values() if source.layer < node.layer < target.layer]
        lane = _lane(between, sy, ty, lanes, x1, x2)
        if lane is None:
            bend = max((tx - sx) / 2, 24)
            c1x, c2x = sx + bend, tx - bend
            edge.path = f"M{sx:.1f},{sy:.1f} C{c1x:.1f},{sy:.1f} {c2x:.1f},{ty:.1f} {tx:.1f},{ty:.1f}"
            # The label sits on the curve's middle (t = 0.5), where it is furthest from both boxes.
            edge.label_x = (sx + 3 * c1x + 3 * c2x + tx) / 8
            edge.label_y = (sy + 3 * sy + 3 * ty + ty) / 8
            continue
        # An arrow that skips layers would cross the boxes in between: it runs in a free lane.
        edge.path = (
            f"M{sx:.1f},{sy:.1f} C{x1:.1f},{sy:.1f} {sx:.1f},{lane:.1f} {x1:.1f},{lane:.1f} "
            f"H{x2:.1f} C{tx:.1f},{lane:.1f} {x2:.1f},{ty:.1f} {tx:.1f},{ty:.1f}"
        )
        edge.label_x, edge.label_y = (x1 + x2) / 2, lane
    if lanes.depth > bottom + 6:
        diagram.height = lanes.depth + PAD + 10


def _lane(between: list[DiagramNode], sy: float, ty: float, lanes: _Lanes, x1: float, x2: float) -> float | None:
    """None when a straight curve from sy to ty clears the boxes in between, else the y of a free lane."""
    if not between:
        return None
    blocked = [(node.y - 8, node.y + node.h + 8) for node in between]
    low, high = min(sy, ty), max(sy, ty)
    if not any(top < high and low < end for top, end in blocked):
        return None
    candidates = []
    for top, end in blocked:
        candidates += [top - GAP_Y / 2 + 8, end + GAP_Y / 2 - 8]
    free = [
        y for y in candidates if PAD / 2 < y < lanes.bottom and lanes.free(y, x1, x2) and not any(top < y < end for top, end in blocked)
    ]
    if not free:
        return lanes.below(x1, x2)
    return lanes.take(min(free, key=lambda y: abs(y - sy) + abs(y - ty)), x1, x2)


def diagram_svg(spec: Any, *, uid: str = "wf", title: str = "Steps") -> str:
    """A spec's steps as inline SVG, with the same steps as a list for screen readers and phones."""
    graph = definition_diagram(spec=spec) if isinstance(spec, dict) else {}
    return render_to_string("workflows/_diagram.html", {"diagram": diagram_layout(graph, uid=uid), "title": title})
