"""``oolong-pairs``: the RLM paper's OOLONG-Pairs: list every pair of users meeting a condition.

Over the same records as ``oolong`` (labels unwritten), each question asks for all pairs of
user IDs, lower id first, one ``(id1, id2)`` per line, as the paper's tasks do: both users
have an instance with one of two labels (its tasks 1-3), the same before a date (its
date-constrained tasks), or one user has one label and the other another (its asymmetric
tasks). Listing pairs makes the work quadratic in the users. Scored by F1 over the set of
normalised pairs (1.0 when both sets are empty).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

from .base import Generator, Param, Sample
from .oolong_records import LABELS, Record, draw_records, format_date, records_for_tokens, render_records

KINDS = ("both", "both_before", "one_each")
SUFFIX = ("Each of the questions can be labelled as one of the labels (the data does not provide the labels, you "
          f"need to figure out the label from the semantics of the question): {', '.join(LABELS)}. In your answer, "
          "list all pairs in the format (user_id_1, user_id_2), separated by newlines.")


class OolongPairs(Generator):
    name = "oolong-pairs"
    description = "OOLONG-Pairs (the RLM paper): all pairs of users meeting a condition on inferred labels"
    params = {
        "tokens": Param(int, 4096, "context length in tokens (about 4 characters each)", minimum=256),
        "users": Param(int, 16, "distinct users (pairs grow as users squared)", minimum=2),
        "kind": Param(str, "any", "question kind, or any (cycled by task)", choices=("any", *KINDS)),
    }
    kinds = KINDS

    def _draw(self, seed: int, params: dict[str, Any]) -> list[Record]:
        return draw_records(self.rng(seed), records_for_tokens(params["tokens"]), users=params["users"])

    def sample(self, seed: int, params: dict[str, Any]) -> Sample:
        records = self._draw(seed, params)
        rng = self.rng(seed + 1)
        kind = params["kind"] if params["kind"] != "any" else KINDS[seed % len(KINDS)]
        first, second = rng.sample(LABELS, 2)
        users = sorted({r.user for r in records})
        has: dict[int, set[str]] = {user: set() for user in users}
        for record in records:
            has[record.user].add(record.label)
        lead = "In the above data, list all pairs of user IDs (no duplicate pairs, list lower ID first) where"
        if kind == "both":
            meets = {u for u in users if has[u] & {first, second}}
            condition = f"both users have at least one instance with a {first} or {second}."
            pairs = [(a, b) for a, b in combinations(users, 2) if a in meets and b in meets]
        elif kind == "both_before":
            cutoff = sorted(r.day for r in records)[len(records) // 2]
            meets = {r.user for r in records if r.label in (first, second) and r.day < cutoff}
            condition = (f"both users have at least one instance with a {first} or {second} dated before "
                         f"{format_date(cutoff)}.")
            pairs = [(a, b) for a, b in combinations(users, 2) if a in meets and b in meets]
        else:
            condition = (f"one user has at least one instance with a {first} and the other has at least one "
                         f"instance with a {second}.")
            pairs = [(a, b) for a, b in combinations(users, 2)
                     if (first in has[a] and second in has[b]) or (second in has[a] and first in has[b])]
        return Sample(query=f"{lead} {condition} {SUFFIX}", expected=[f"({a}, {b})" for a, b in pairs],
                      scorer={"name": "set_f1", "options": {"pairs": True}},
                      metadata={"tokens": params["tokens"], "kind": kind, "users": len(users),
                                "pairs": len(pairs)})

    def render(self, seed: int, params: dict[str, Any]) -> str:
        return render_records(self._draw(seed, params))
