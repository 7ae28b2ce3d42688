"""``oolong``: OOLONG-synth's aggregation questions over records whose labels must be inferred.

Question kinds, worded as OOLONG-synth words them: how many instances have a label (overall,
for a subset of users, for a date range), which label is the most or least common, and
whether one label is more common, less common or as frequent as another. Answers are given
in OOLONG's forms ("Answer: 12", "Label: entity", "Answer: X is more common than Y") and
scored by OOLONG's own rules (the ``oolong`` scorer).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .base import Generator, Param, Sample
from .oolong_records import LABELS, Record, draw_records, format_date, records_for_tokens, render_records

KINDS = ("count", "count_users", "count_dates", "most_common", "least_common", "relative")
PREAMBLE = ("The context lists questions, one per line, as 'Date: ... || User: ... || Instance: <question>'. "
            "Each question can be labelled with the kind of its answer, one of 6 labels: "
            f"{', '.join(LABELS)} -- the labels are not written: infer each one from the meaning of the question. "
            "Answer the following: ")


def _ask_count(label: str) -> str:
    return (f"how many data points should be classified as label '{label}'? "
            "Give your final answer in the form 'Answer: number'.")


class Oolong(Generator):
    name = "oolong"
    description = "OOLONG-synth-style counting and frequency questions over records with unwritten labels"
    params = {
        "tokens": Param(int, 8192, "context length in tokens (about 4 characters each)", minimum=256),
        "kind": Param(str, "any", "question kind, or any (cycled by task)", choices=("any", *KINDS)),
    }
    kinds = KINDS

    def _draw(self, seed: int, params: dict[str, Any]) -> list[Record]:
        rng = self.rng(seed)
        count = records_for_tokens(params["tokens"])
        return draw_records(rng, count, users=max(4, count // 12))

    def sample(self, seed: int, params: dict[str, Any]) -> Sample:
        records = self._draw(seed, params)
        rng = self.rng(seed + 1)  # the question's own draws, apart from the data's
        kind = params["kind"] if params["kind"] != "any" else KINDS[seed % len(KINDS)]
        counts = Counter(record.label for record in records)
        label = rng.choice(LABELS)
        if kind == "count":
            question, expected = f"In the above data, {_ask_count(label)}", str(counts[label])
        elif kind == "count_users":
            users = sorted(rng.sample(sorted({r.user for r in records}), 3))
            chosen = Counter(r.label for r in records if r.user in users)
            question = (f"For the following question, only consider the subset of instances that are associated "
                        f"with user IDs {', '.join(map(str, users))}. Among instances associated with these users, "
                        f"{_ask_count(label)}")
            expected = str(chosen[label])
        elif kind == "count_dates":
            days = sorted(r.day for r in records)
            since, last = sorted(rng.sample(days, 2))
            chosen = Counter(r.label for r in records if since <= r.day <= last)
            question = (f"For the following question, only consider the subset of instances that occur between "
                        f"{format_date(since)} and {format_date(last)} (both included). Among these instances, "
                        f"{_ask_count(label)}")
            expected = str(chosen[label])
        elif kind in ("most_common", "least_common"):
            ranked = sorted(LABELS, key=lambda name: (counts[name], name), reverse=kind == "most_common")
            which = "most" if kind == "most_common" else "least"
            question = (f"In the above data, which of the labels is the {which} common? Give your final answer in "
                        f"the form 'Label: answer' where answer is one of the labels: {', '.join(LABELS)}.")
            expected = ranked[0]
            if counts[ranked[0]] == counts[ranked[1]]:  # a tie has no single answer: ask to count instead
                question, expected = f"In the above data, {_ask_count(ranked[0])}", str(counts[ranked[0]])
        else:
            first, second = rng.sample(LABELS, 2)
            relation = ("more common than" if counts[first] > counts[second] else
                        "less common than" if counts[first] < counts[second] else "same frequency as")
            question = (f"In the above data, is label '{first}' more common, less common, or the same frequency as "
                        f"label '{second}'? Give your final answer in the form 'Answer: {first} is [X] {second}', "
                        "where [X] is 'more common than', 'less common than', or 'same frequency as'.")
            expected = relation
        return Sample(query=PREAMBLE + question, expected=expected, scorer={"name": "oolong"},
                      metadata={"tokens": params["tokens"], "kind": kind, "records": len(records)})

    def render(self, seed: int, params: dict[str, Any]) -> str:
        return render_records(self._draw(seed, params))
