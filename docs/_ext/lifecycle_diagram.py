"""Draw the executor lifecycle from ``mirakuru.core.lifecycle.TRANSITIONS`` at build time.

The diagram is computed from the same table the state machine enforces, so it cannot drift
from the code. It is plain SVG written by this module: no Graphviz binary, no JavaScript,
nothing fetched when the docs are built or read.
"""

from __future__ import annotations

import enum
import html
import math
from collections.abc import Mapping, Sequence

import attrs
from docutils import nodes
from sphinx import addnodes
from sphinx.application import Sphinx
from sphinx.util.docutils import SphinxDirective
from sphinx.util.typing import ExtensionMetadata

Table = Mapping[enum.Enum, tuple[frozenset[enum.Enum], enum.Enum]]

NODE_WIDTH = 96
NODE_HEIGHT = 36
COLUMN = 160
ROW = 120
MARGIN = 40
#: Height of the arc drawn above a row for an edge that skips columns, per column skipped.
ARC_RISE = 26
#: Sideways bend that separates two edges running in opposite directions between a pair.
PAIR_BEND = 18


@attrs.frozen
class Edge:
    """One arrow of the diagram: a trigger moving ``source`` to ``dest``."""

    trigger: str
    source: enum.Enum
    dest: enum.Enum


def edges(table: Table, states: Sequence[enum.Enum]) -> list[Edge]:
    """Every (trigger, source, dest) of the table, in a stable order."""
    order = {state: index for index, state in enumerate(states)}
    found = [
        Edge(str(trigger.value), source, dest)
        for trigger, (sources, dest) in table.items()
        for source in sorted(sources, key=order.__getitem__)
    ]
    return found


def back_edges(all_edges: Sequence[Edge], initial: enum.Enum) -> set[Edge]:
    """Edges that close a cycle in a depth-first walk from ``initial`` (drawn as returns)."""
    outgoing: dict[enum.Enum, list[Edge]] = {}
    for edge in all_edges:
        outgoing.setdefault(edge.source, []).append(edge)
    found: set[Edge] = set()
    on_path: set[enum.Enum] = set()
    done: set[enum.Enum] = set()

    def visit(state: enum.Enum) -> None:
        on_path.add(state)
        for edge in outgoing.get(state, []):
            if edge.dest in on_path:
                found.add(edge)
            elif edge.dest not in done:
                visit(edge.dest)
        on_path.discard(state)
        done.add(state)

    visit(initial)
    return found


def ranks(forward: Sequence[Edge], states: Sequence[enum.Enum]) -> dict[enum.Enum, int]:
    """Longest-path layering: each state sits one column right of its furthest predecessor."""
    rank = dict.fromkeys(states, 0)
    for _ in states:  # the forward graph is acyclic, so len(states) rounds settle it
        for edge in forward:
            rank[edge.dest] = max(rank[edge.dest], rank[edge.source] + 1)
    return rank


def positions(table: Table, states: Sequence[enum.Enum]) -> dict[enum.Enum, tuple[float, float]]:
    """Column and row of each state: the main path on row 0, the others below it."""
    all_edges = edges(table, states)
    back = back_edges(all_edges, states[0])
    forward = [edge for edge in all_edges if edge not in back]
    rank = ranks(forward, states)
    # The main path: from the initial state, always one column on (first in enum order).
    main: list[enum.Enum] = [states[0]]
    while True:
        here = main[-1]
        successors = {
            e.dest for e in forward if e.source == here and rank[e.dest] == rank[here] + 1
        }
        if not successors:
            break
        main.append(next(s for s in states if s in successors))
    placed = {state: (float(rank[state]), 0.0) for state in main}
    row = 1.0
    for state in states:
        if state in placed:
            continue
        neighbours = {
            placed[other][0]
            for edge in all_edges
            for other in (edge.source, edge.dest)
            if state in (edge.source, edge.dest) and other != state and other in placed
        }
        column = sum(neighbours) / len(neighbours) if neighbours else float(rank[state])
        placed[state] = (column, row)
        row += 1.0
    return placed


def _clip(centre: tuple[float, float], toward: tuple[float, float]) -> tuple[float, float]:
    """The point where the line from a node's centre toward ``toward`` leaves its box."""
    cx, cy = centre
    dx, dy = toward[0] - cx, toward[1] - cy
    if dx == 0 and dy == 0:
        return centre
    scale = min(
        (NODE_WIDTH / 2) / abs(dx) if dx else math.inf,
        (NODE_HEIGHT / 2) / abs(dy) if dy else math.inf,
    )
    return cx + dx * scale, cy + dy * scale


def render_svg(table: Table, states: Sequence[enum.Enum], title: str) -> str:
    """The lifecycle as a self-contained SVG document that follows the page's text colour."""
    placed = positions(table, states)
    all_edges = edges(table, states)
    width = MARGIN * 2 + NODE_WIDTH + COLUMN * max(x for x, _ in placed.values())
    # Room above the main row for the highest arc and its label.
    top = MARGIN / 2 + ARC_RISE * max(x for x, _ in placed.values()) * 0.8
    height = top + NODE_HEIGHT + ROW * max(y for _, y in placed.values()) + MARGIN

    def centre(state: enum.Enum) -> tuple[float, float]:
        x, y = placed[state]
        return MARGIN + NODE_WIDTH / 2 + COLUMN * x, top + NODE_HEIGHT / 2 + ROW * y

    pairs = {(e.source, e.dest) for e in all_edges}
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 {width:.0f} '
        f'{height:.0f}" class="lifecycle-diagram" style="max-width: 100%; height: auto"'
        ' font-family="sans-serif" font-size="13">',
        f"<title>{html.escape(title)}</title>",
        '<defs><marker id="lifecycle-arrow" viewBox="0 0 10 10" refX="9" refY="5"'
        ' markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0,0 L10,5 L0,10 z" fill="currentColor"/></marker></defs>',
        '<g fill="none" stroke="currentColor" color="currentColor">',
    ]
    labels: list[str] = []
    for edge in all_edges:
        (sx, sy), (dx, dy) = centre(edge.source), centre(edge.dest)
        span = abs(placed[edge.dest][0] - placed[edge.source][0])
        same_row = placed[edge.source][1] == placed[edge.dest][1]
        if same_row and span > 1:
            # Skips over nodes in its row: arc above the row, higher for longer jumps.
            mx, my = (sx + dx) / 2, sy - NODE_HEIGHT / 2 - ARC_RISE * span * 1.6
            # Longer arcs start and end nearer the node centres, so nested arcs never cross.
            inset = NODE_WIDTH / 2 * min(0.8, max(-0.8, 1.3 - 0.5 * span)) * (1 if dx > sx else -1)
            start = (sx + inset, sy - NODE_HEIGHT / 2)
            end = (dx - inset, dy - NODE_HEIGHT / 2)
        else:
            bend = PAIR_BEND if (edge.dest, edge.source) in pairs else 0.0
            length = math.hypot(dx - sx, dy - sy) or 1.0
            # Perpendicular offset (to the right of the direction of travel) for pairs.
            mx = (sx + dx) / 2 - (dy - sy) / length * bend * 2
            my = (sy + dy) / 2 + (dx - sx) / length * bend * 2
            start, end = _clip((sx, sy), (mx, my)), _clip((dx, dy), (mx, my))
        parts.append(
            f'<path d="M{start[0]:.1f},{start[1]:.1f} Q{mx:.1f},{my:.1f} '
            f'{end[0]:.1f},{end[1]:.1f}" marker-end="url(#lifecycle-arrow)"'
            f' stroke-width="1.3"><title>{html.escape(edge.trigger)}: '
            f"{edge.source.value} to {edge.dest.value}</title></path>"
        )
        # The curve's midpoint (t = 0.5 on a quadratic Bezier) carries the label.
        lx = 0.25 * start[0] + 0.5 * mx + 0.25 * end[0]
        ly = 0.25 * start[1] + 0.5 * my + 0.25 * end[1]
        if start[1] == end[1] == my:
            ly -= 10  # a straight horizontal arrow: label above it, clear of the arrowhead
        labels.append(
            f'<text x="{lx:.1f}" y="{ly + 4:.1f}" text-anchor="middle" fill="currentColor"'
            ' stroke="var(--color-background-primary, white)" stroke-width="4"'
            f' paint-order="stroke" font-style="italic">{html.escape(edge.trigger)}</text>'
        )
    for state in states:
        cx, cy = centre(state)
        parts.append(
            f'<rect x="{cx - NODE_WIDTH / 2:.1f}" y="{cy - NODE_HEIGHT / 2:.1f}"'
            f' width="{NODE_WIDTH}" height="{NODE_HEIGHT}" rx="9" stroke-width="1.6"/>'
        )
    first_x, first_y = centre(states[0])
    entry_x = first_x - NODE_WIDTH / 2 - 26
    parts.append(
        f'<path d="M{entry_x + 5:.1f},{first_y:.1f} H{first_x - NODE_WIDTH / 2:.1f}"'
        ' marker-end="url(#lifecycle-arrow)" stroke-width="1.3"/>'
    )
    parts.append("</g>")
    parts.append(
        f'<circle cx="{entry_x:.1f}" cy="{first_y:.1f}" r="5" fill="currentColor"'
        ' color="currentColor"/>'
    )
    for state in states:
        cx, cy = centre(state)
        parts.append(
            f'<text x="{cx:.1f}" y="{cy + 4.5:.1f}" text-anchor="middle" fill="currentColor"'
            f' font-weight="bold">{html.escape(str(state.value))}</text>'
        )
    parts.extend(labels)
    parts.append("</svg>")
    return "\n".join(parts)


def _lifecycle() -> tuple[Table, list[enum.Enum]]:
    from mirakuru.core.lifecycle import TRANSITIONS, State

    return TRANSITIONS, list(State)


class LifecycleDiagram(SphinxDirective):
    """``.. lifecycle-diagram::`` draws the transition table as an inline SVG."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        """An SVG for HTML output, and the transitions as text for every other builder."""
        table, states = _lifecycle()
        svg = render_svg(table, states, "The executor lifecycle")
        text = "\n".join(
            f"{e.source.value} --{e.trigger}--> {e.dest.value}" for e in edges(table, states)
        )
        figure = nodes.container(classes=["lifecycle-diagram"])
        figure += nodes.raw("", svg, format="html")
        figure += addnodes.only("", nodes.literal_block(text, text), expr="not html")
        return [figure]


class TransitionTable(SphinxDirective):
    """``.. transition-table::`` lists every trigger with its sources and destination."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        """A three-column table built from the transition table."""
        table, states = _lifecycle()
        order = {state: index for index, state in enumerate(states)}
        rows = [
            (
                str(trigger.value),
                ", ".join(str(s.value) for s in sorted(sources, key=order.__getitem__)),
                str(dest.value),
            )
            for trigger, (sources, dest) in table.items()
        ]
        return [_table(("trigger", "from any of", "to"), rows)]


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> nodes.table:
    """A plain docutils table with one header row and literal cells."""
    group = nodes.tgroup(cols=len(header))
    for _ in header:
        group += nodes.colspec(colwidth=1)
    head = nodes.thead()
    head += _row(header, literal=False)
    body = nodes.tbody()
    for row in rows:
        body += _row(row, literal=True)
    group += head
    group += body
    table = nodes.table(classes=["transition-table"])
    table += group
    return table


def _row(cells: Sequence[str], *, literal: bool) -> nodes.row:
    row = nodes.row()
    for cell in cells:
        entry = nodes.entry()
        paragraph = nodes.paragraph()
        paragraph += nodes.literal(cell, cell) if literal else nodes.Text(cell)
        entry += paragraph
        row += entry
    return row


def setup(app: Sphinx) -> ExtensionMetadata:
    """Register the two directives."""
    app.add_directive("lifecycle-diagram", LifecycleDiagram)
    app.add_directive("transition-table", TransitionTable)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
