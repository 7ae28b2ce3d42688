"""Records in OOLONG-synth's style, shared by ``oolong`` and ``oolong-pairs``.

Each line is ``Date: Mon DD, YYYY || User: NNNNN || Instance: <a question>``, as in
OOLONG-synth's ``trec_coarse`` windows. Each question's label, the kind of its answer (one of
TREC's six coarse classes), is NOT written: a model must infer it from the question's
meaning. Questions are drawn from templates whose meaning fixes the label ("What does NASA
stand for ?" is an abbreviation, "Who wrote ... ?" a human being). The label frequencies
are skewed per window, as OOLONG's are, so "most common" has one answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta

from .words import MONTHS

LABELS = ("abbreviation", "description and abstract concept", "entity", "human being", "location",
          "numeric value")

_ACRONYMS = ("NASA", "UNESCO", "NATO", "FIFA", "LASER", "RADAR", "SCUBA", "HTML", "DNA", "OPEC", "UNICEF",
             "AIDS", "GPS", "CPU", "ATM", "IKEA", "BMW", "NBA", "PIN", "VAT")
_PLACES = ("Lake Titicaca", "Mount Kilimanjaro", "the Alhambra", "Machu Picchu", "the Danube", "Timbuktu",
           "the Gobi Desert", "Angkor Wat", "the Great Barrier Reef", "Petra", "Reykjavik", "the Sahara",
           "Kathmandu", "the Andes", "Zanzibar", "Lake Baikal")
_WORKS = ("Moby Dick", "The Odyssey", "Don Quixote", "War and Peace", "Hamlet", "The Iliad", "Faust",
          "Ulysses", "The Divine Comedy", "Les Miserables", "Walden", "Dracula")
_THINGS = ("telephone", "light bulb", "printing press", "steam engine", "telescope", "barometer",
           "stethoscope", "bicycle", "zipper", "typewriter", "microscope", "sewing machine")
_CONCEPTS = ("democracy", "entropy", "irony", "nostalgia", "inflation", "photosynthesis", "stoicism",
             "karma", "osmosis", "feudalism", "surrealism", "utilitarianism")
_CREATURES = ("axolotl", "pangolin", "okapi", "narwhal", "quokka", "capybara", "tapir", "gharial")
_EVENTS = ("the first moon landing", "the fall of the Berlin Wall", "the signing of the Magna Carta",
           "the eruption of Krakatoa", "the first Olympic Games", "the sinking of the Titanic")
_TEMPLATES: dict[str, tuple[str, ...]] = {
    "abbreviation": ("What does {acronym} stand for ?", "What is the full form of {acronym} ?",
                     "What do the letters {acronym} stand for ?"),
    "description and abstract concept": ("What is the meaning of {concept} ?", "Why is {concept} important ?",
                                         "How does a {thing} work ?", "What is the definition of {concept} ?"),
    "entity": ("What kind of animal is a {creature} ?", "What was the name of the ship in {work} ?",
               "What instrument is used to play the theme of {work} ?", "What food does a {creature} eat ?"),
    "human being": ("Who wrote {work} ?", "Who invented the {thing} ?", "Who first climbed {place} ?",
                    "Who was the main character of {work} ?"),
    "location": ("Where is {place} ?", "What country is {place} in ?", "Where was the {thing} invented ?",
                 "Where do {creature}s live in the wild ?"),
    "numeric value": ("How tall is {place} ?", "What year did {event} happen ?", "How many pages does {work} have ?",
                      "How much does a {thing} weigh ?", "When did {event} take place ?"),
}
_FILLERS = {"acronym": _ACRONYMS, "place": _PLACES, "work": _WORKS, "thing": _THINGS, "concept": _CONCEPTS,
            "creature": _CREATURES, "event": _EVENTS}
START = date(2022, 1, 1)
DAYS = 3 * 365


@dataclass(frozen=True)
class Record:
    day: date
    user: int
    text: str
    label: str

    def line(self) -> str:
        return f"Date: {format_date(self.day)} || User: {self.user} || Instance: {self.text}"


def format_date(day: date) -> str:
    return f"{MONTHS[day.month - 1]} {day.day:02d}, {day.year}"


def templates() -> dict[str, tuple[str, ...]]:
    """Every label's question templates (with ``{slot}`` fillers), e.g. for re-deriving labels."""
    return dict(_TEMPLATES)


def fillers() -> dict[str, tuple[str, ...]]:
    return dict(_FILLERS)


def _question(rng: random.Random, label: str) -> str:
    template = rng.choice(_TEMPLATES[label])
    slots = {name: rng.choice(values) for name, values in _FILLERS.items()}
    return template.format(**slots)


def draw_records(rng: random.Random, count: int, users: int) -> list[Record]:
    """``count`` records from ``users`` users (5-digit ids), labels skewed at random."""
    weights = [rng.uniform(1, 6) for _ in LABELS]  # unequal, so frequencies differ
    ids = rng.sample(range(10_000, 100_000), users)
    records = []
    for _ in range(count):
        label = rng.choices(LABELS, weights=weights)[0]
        records.append(Record(day=START + timedelta(days=rng.randrange(DAYS)), user=rng.choice(ids),
                              text=_question(rng, label), label=label))
    return records


def render_records(records: list[Record]) -> str:
    return "\n".join(record.line() for record in records)


def records_for_tokens(tokens: int) -> int:
    """About how many records make a context of ``tokens`` tokens (~4 characters each)."""
    return max(10, tokens * 4 // 86)
