"""``sniah``: a single needle in a haystack, following RULER's recipe (its ``niah_single_1``).

The haystack is RULER's "noise" filler, one sentence group per line; the needle is
"One of the special magic numbers for {key} is: {value}." with a 7-digit value and an
adjective-noun key, put at one of 40 evenly spaced depths (RULER's ``DEPTHS``, 0 to 100%);
the question is RULER's "What is the special magic number for {key} mentioned in the
provided text?"; scored with RULER's ``string_match_all``. Lengths are in tokens of about
four characters, from 2^13 to 2^20 and up to 10M.
"""

from __future__ import annotations

from typing import Any

from .base import CHARS_PER_TOKEN, Generator, Param, Sample
from .words import ADJECTIVES, NOUNS

NOISE = "The grass is green. The sky is blue. The sun is yellow. Here we go. There and back again."
NEEDLE = "One of the special magic numbers for {key} is: {value}."
QUERY = "What is the special magic number for {key} mentioned in the provided text?"
#: RULER's depths: round(linspace(0, 100, 40)); Python's round() halves to even, as numpy's does.
DEPTHS = tuple(round(i * 100 / 39) for i in range(40))
MAX_TOKENS = 10_000_000


class Sniah(Generator):
    name = "sniah"
    description = "single needle in a haystack (RULER's recipe), 2^13 tokens to 10M"
    params = {"tokens": Param(int, 8192, "context length in tokens (about 4 characters each)", minimum=64)}

    def _draw(self, seed: int, params: dict[str, Any]) -> tuple[str, str, int, int]:
        tokens = params["tokens"]
        if tokens > MAX_TOKENS:
            raise ValueError(f"sniah tokens={tokens}: at most {MAX_TOKENS:,}")
        rng = self.rng(seed)
        key = f"{rng.choice(ADJECTIVES)}-{rng.choice(NOUNS)}"
        value = str(rng.randint(1_000_000, 9_999_999))
        depth = rng.choice(DEPTHS)
        lines = max(1, (tokens * CHARS_PER_TOKEN) // (len(NOISE) + 1))
        return key, value, depth, lines

    def sample(self, seed: int, params: dict[str, Any]) -> Sample:
        key, value, depth, lines = self._draw(seed, params)
        return Sample(query=QUERY.format(key=key), expected=[value], scorer={"name": "string_match_all"},
                      metadata={"tokens": params["tokens"], "depth": depth, "key": key,
                                "chars": lines * (len(NOISE) + 1) + len(NEEDLE.format(key=key, value=value))})

    def render(self, seed: int, params: dict[str, Any]) -> str:
        key, value, depth, lines = self._draw(seed, params)
        haystack = [NOISE] * lines  # one shared str: a 10M-token list costs only its pointers
        haystack.insert(int(lines * depth / 100), NEEDLE.format(key=key, value=value))
        return "\n".join(haystack)
