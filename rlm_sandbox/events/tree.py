"""Rebuild the tree of runs from a flat event stream (children link to their parent)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from .types import Final, RunStart


@dataclass
class RunNode:
    """One run: its own events in order, and the child runs it started."""

    run_id: str
    parent_run_id: str | None
    depth: int
    events: list[Any] = field(default_factory=list)
    children: list["RunNode"] = field(default_factory=list)

    @property
    def start(self) -> RunStart | None:
        return next((e for e in self.events if isinstance(e, RunStart)), None)

    @property
    def final(self) -> Final | None:
        return next((e for e in reversed(self.events) if isinstance(e, Final)), None)

    def walk(self) -> Iterable["RunNode"]:
        yield self
        for child in self.children:
            yield from child.walk()


def build_tree(events: Iterable[Any]) -> list[RunNode]:
    """The root runs of a stream (normally one), each with its children attached.

    A child whose parent never appears (a trace cut before the parent's first event,
    which cannot happen with our writer, or a hand-edited file) becomes a root.
    """
    nodes: dict[str, RunNode] = {}
    order: list[RunNode] = []
    for event in events:
        node = nodes.get(event.run_id)
        if node is None:
            node = nodes[event.run_id] = RunNode(event.run_id, event.parent_run_id, event.depth)
            order.append(node)
        node.events.append(event)
    roots = []
    for node in order:
        parent = nodes.get(node.parent_run_id) if node.parent_run_id else None
        if parent is None:
            roots.append(node)
        else:
            parent.children.append(node)
    return roots
