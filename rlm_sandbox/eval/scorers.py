"""Scorers: an answer and the expected value in, a score from 0 to 1 out.

Each follows a benchmark's own rule where there is one (docs/EVAL.md, "Scorers", cites
which): ``oolong`` is OOLONG-synth's official parse-and-compare, ``string_match_all`` is
RULER's metric for its needle tasks, ``set_f1`` is OOLONG-Pairs' F1 over the set of pairs.
A task names its scorer as ``{"name": ..., "options": {...}}``; a Python callable is named
``module:function`` and called as ``function(answer, expected, **options)``.
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
import string
from datetime import date, datetime
from typing import Any, Callable

__all__ = ["SCORERS", "ScorerError", "check_scorer", "normalise_text", "parse_number", "score"]


class ScorerError(ValueError):
    """A scorer name or option is wrong, or a custom scorer misbehaved."""


# --- shared parsing ------------------------------------------------------------------

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBER = re.compile(r"[-+]?\$?\d[\d,]*(?:\.\d+)?")


def normalise_text(text: str) -> str:
    """Lower case, punctuation, articles and extra spaces removed (SQuAD's answer normalisation,
    which markdown emphasis and a trailing period do not survive)."""
    text = str(text).lower()
    text = "".join(ch for ch in text if ch not in string.punctuation)
    return " ".join(_ARTICLES.sub(" ", text).split())


def parse_number(text: str) -> float | None:
    """The last number written in ``text`` ("$1,105,000", "42.5"), or None.

    The last, because an answer in prose usually ends with its result ("Summing the 20
    salaries gives $1,105,000")."""
    found = _NUMBER.findall(str(text))
    if not found:
        return None
    try:
        return float(found[-1].replace("$", "").replace(",", ""))
    except ValueError:
        return None


def _options_of(expected: Any) -> list[Any]:
    return list(expected) if isinstance(expected, (list, tuple)) else [expected]


# --- the scorers -------------------------------------------------------------------------

def exact(answer: str, expected: Any, *, normalise: bool = True) -> float:
    """1 when the answer equals the expected value (or one of a list), after normalisation."""
    prepare = normalise_text if normalise else (lambda text: str(text).strip())
    return 1.0 if prepare(answer) in {prepare(option) for option in _options_of(expected)} else 0.0


def contains(answer: str, expected: Any, *, normalise: bool = True) -> float:
    """1 when the expected value (or one of a list) appears in the answer."""
    prepare = normalise_text if normalise else str
    return 1.0 if any(prepare(option) in prepare(answer) for option in _options_of(expected)) else 0.0


def numeric_decay(answer: str, expected: Any, *, base: float = 0.75, relative: bool = False,
                  scale: float = 1.0) -> float:
    """``base ** (distance / scale)`` for the last number in the answer: 1 when exact, less the
    further off. ``distance`` is ``|expected - answer|``, or with ``relative`` that divided by
    ``|expected|`` (so ``scale=0.01`` costs a factor ``base`` per 1% off). No number: 0."""
    if not 0 < base < 1 or scale <= 0:
        raise ScorerError("numeric_decay needs 0 < base < 1 and scale > 0")
    got, want = parse_number(answer), parse_number(str(expected))
    if got is None or want is None:
        return 0.0
    distance = abs(want - got)
    if relative:
        distance = distance / abs(want) if want else (0.0 if got == 0 else math.inf)
    return float(base ** (distance / scale)) if math.isfinite(distance) else 0.0


_PAIR_IN_PARENS = re.compile(r"\(\s*([^,()\s]+)\s*,\s*([^,()\s]+)\s*\)")
_BARE_PAIR = re.compile(r"^\s*(?:[-*+]|\d+[.)])?\s*([^,()\s]+)\s*,\s*([^,()\s]+)\s*$")


def _pair(a: Any, b: Any) -> tuple[str, str]:
    """A pair in its one form: lower id first (by number when both are numbers)."""
    a, b = str(a).strip().strip("*`'\""), str(b).strip().strip("*`'\"")
    both_numbers = a.lstrip("-").isdigit() and b.lstrip("-").isdigit()
    first_is_lower = int(a) <= int(b) if both_numbers else a <= b
    return (a, b) if first_is_lower else (b, a)


def _pairs_in(text: str) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for line in str(text).splitlines():
        line = line.replace("**", "").replace("`", "")
        matches = _PAIR_IN_PARENS.findall(line) or _BARE_PAIR.findall(line)
        found.update(_pair(a, b) for a, b in matches)
    return found


def _is_pair(item: Any) -> bool:
    if isinstance(item, (list, tuple)):
        return len(item) == 2
    return isinstance(item, str) and bool(_PAIR_IN_PARENS.fullmatch(item.strip()) or _BARE_PAIR.match(item))


def set_f1(answer: str, expected: Any, *, pairs: bool | None = None) -> float:
    """F1 between the set of items in the answer (one per line) and the expected set.

    With pairs (guessed from the expected items when not said), ``(a, b)`` and ``a, b`` are
    both read, and each pair is put lower id first; prose lines holding no pair are ignored.
    Both sets empty: 1.0."""
    items = _options_of(expected) if expected not in (None, "") else []
    if pairs is None:
        pairs = bool(items) and all(_is_pair(item) for item in items)
        pairs = pairs or (not items and bool(_pairs_in(answer)))
    want: set[tuple[str, str]] | set[str]
    got: set[tuple[str, str]] | set[str]
    if pairs:
        want = {(_pair(*item) if isinstance(item, (list, tuple)) else next(iter(_pairs_in(item)))) for item in items}
        got = _pairs_in(answer)
    else:
        want = {normalise_text(item) for item in items} - {""}
        got = {normalise_text(line) for line in str(answer).splitlines()} - {""}
    if not want and not got:
        return 1.0
    hits = len(want & got)
    if not hits:
        return 0.0
    precision, recall = hits / len(got), hits / len(want)
    return 2 * precision * recall / (precision + recall)


def regex(answer: str, expected: Any = None, *, pattern: str | None = None, flags: str = "") -> float:
    """1 when ``pattern`` (or the expected value, as a pattern) is found in the answer.
    ``flags``: letters of re's inline flags, e.g. ``"i"`` to ignore case."""
    pattern = pattern if pattern is not None else str(expected)
    try:
        compiled = re.compile(f"(?{flags}){pattern}" if flags else pattern)
    except re.error as exc:
        raise ScorerError(f"regex scorer: {pattern!r} is not a valid pattern ({exc})") from None
    return 1.0 if compiled.search(str(answer)) else 0.0


_COMPARISONS = ("more common", "less common", "same frequency")
_DATE_FORMATS = ("%Y-%m-%d", "%b %d, %Y", "%B %d, %Y", "%m/%d/%Y", "%d %b %Y", "%d %B %Y", "%Y/%m/%d")


def oolong_parse(answer: str) -> str:
    """OOLONG-synth's answer parse (its ``synth_attempt_answer_parse``): the text after the last
    ':' with ``*``, ``[`` and ``]`` removed; with no ':', the whole answer if under 20
    characters, else its last word; a long candidate holding a comparison phrase becomes it."""
    if ":" not in answer:
        return answer if len(answer) < 20 else (answer.split() or [""])[-1]
    candidate = answer.split(":")[-1].strip().replace("*", "").replace("[", "").replace("]", "")
    if len(candidate) >= 20:
        for phrase in _COMPARISONS:
            if phrase in candidate:
                return phrase
    return candidate


def _as_date(text: str) -> date | None:
    for pattern in _DATE_FORMATS:
        try:
            return datetime.strptime(text.strip(), pattern).date()
        except ValueError:
            continue
    return None


def oolong(answer: str, expected: Any, *, answer_type: str | None = None) -> float:
    """OOLONG-synth's official scoring (its ``synth_process_response``): exact, case-sensitive
    match of the parsed answer; a comparison phrase scores when the gold contains it; numbers
    score ``0.75 ** |gold - answer|`` (an answer that is no integer scores 0); dates are compared
    as dates. ``answer_type`` (numeric, date, label) is guessed from the gold when not given."""
    gold = str(expected[0] if isinstance(expected, (list, tuple)) and expected else expected)
    if answer_type is None:
        answer_type = "numeric" if re.fullmatch(r"-?\d+", gold.strip()) else ("date" if _as_date(gold) else "label")
    parsed = oolong_parse(str(answer))
    if parsed == gold:
        return 1.0
    if parsed in ("more common", "less common", "same frequency"):
        return 1.0 if parsed in gold else 0.0
    if answer_type == "numeric":
        try:
            return float(0.75 ** abs(int(gold) - int(parsed)))
        except ValueError:
            return 0.0
    if answer_type == "date":
        got, want = _as_date(parsed), _as_date(gold)
        return 1.0 if got is not None and got == want else 0.0
    return 0.0


_CONTROL = re.compile(r"[\x00-\x1f]")


def string_match_all(answer: str, expected: Any) -> float:
    """RULER's ``string_match_all``: the share of the expected strings found in the answer,
    case-insensitively (control characters removed first, as RULER's post-processing does)."""
    prediction = _CONTROL.sub("", str(answer).strip()).strip().lower()
    references = [str(item) for item in _options_of(expected)]
    if not references:
        raise ScorerError("string_match_all needs at least one expected string")
    return sum(1.0 for ref in references if ref.lower() in prediction) / len(references)


SCORERS: dict[str, Callable[..., float]] = {
    "exact": exact, "contains": contains, "numeric_decay": numeric_decay, "set_f1": set_f1, "regex": regex,
    "oolong": oolong, "string_match_all": string_match_all,
}


# --- naming and calling --------------------------------------------------------------------

def _resolve(name: str) -> Callable[..., Any]:
    if name in SCORERS:
        return SCORERS[name]
    if ":" not in name:
        raise ScorerError(f"no scorer named {name!r}; use one of {', '.join(SCORERS)}, or a Python callable "
                          "as 'module:function'")
    module_name, _, attribute = name.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise ScorerError(f"scorer {name!r} cannot be loaded ({type(exc).__name__}: {exc}); check that the module "
                          "is importable (PYTHONPATH) and defines that function") from None
    if not callable(function):
        raise ScorerError(f"scorer {name!r} is not callable")
    return function


def check_scorer(name: str, options: dict[str, Any]) -> None:
    """Raise ScorerError if the scorer does not exist or does not take these options."""
    function = _resolve(name)
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    parameters = signature.parameters
    if any(p.kind is p.VAR_KEYWORD for p in parameters.values()):
        return
    allowed = [p.name for p in list(parameters.values())[2:] if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ScorerError(f"scorer {name!r} takes no option {', '.join(map(repr, unknown))}"
                          f"; its options: {', '.join(allowed) or 'none'}")


def score(name: str, answer: str, expected: Any, options: dict[str, Any] | None = None) -> float:
    """Score ``answer`` with the scorer ``name``; always a float from 0 to 1."""
    function = _resolve(name)
    value = function(answer, expected, **(options or {}))
    if isinstance(value, tuple):  # a custom scorer may return (score, explanation)
        value = value[0]
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ScorerError(f"scorer {name!r} returned {value!r}, not a number from 0 to 1") from None
    if not 0.0 <= value <= 1.0 or math.isnan(value):
        raise ScorerError(f"scorer {name!r} returned {value}, outside 0..1")
    return value
