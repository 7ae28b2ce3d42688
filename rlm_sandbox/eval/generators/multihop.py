"""``multi-hop``: documents holding chains of facts, with distractors; the question follows 2 or
3 of them ("In which town was the mentor of the director of the X born?").

Facts are short sentences scattered over numbered documents, shuffled: who directs each
organisation, where it is headquartered, where each person was born, who mentored them.
Distractors sit beside them: deputy directors, people who moved to another town, facts
about other organisations. Scored by exact match after normalisation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Generator, Param, Sample
from .words import ADJECTIVES, FIRST_NAMES, LAST_NAMES, NOUNS

_KINDS = ("Institute", "Foundation", "Society", "Laboratory", "Academy", "Guild")
_PREFIXES = ("Ash", "Bram", "Cal", "Dun", "Elm", "Fern", "Gil", "Hal", "Ivy", "Kel", "Lor", "Mar", "Nor", "Oak",
             "Pen", "Rav", "Stan", "Thorn", "Wes", "Yar")
_SUFFIXES = ("ford", "wick", "ton", "stead", "mere", "holm", "dale", "port")
QUESTIONS = {
    "director_born": "In which town was the director of the {org} born?",
    "directed_city": "In which town is the organisation directed by {person} headquartered?",
    "mentor_born": "In which town was the mentor of the director of the {org} born?",
}


@dataclass
class World:
    """The facts: organisations' directors and headquarters, people's birthplaces and mentors."""

    director: dict[str, str]
    headquarters: dict[str, str]
    born: dict[str, str]
    mentor: dict[str, str]
    deputy: dict[str, str]
    moved: dict[str, str]


class MultiHop(Generator):
    name = "multi-hop"
    description = "2-3 hop chains of facts among distractor documents; exact match"
    params = {
        "docs": Param(int, 60, "documents in the context", minimum=6),
        "hops": Param(int, 2, "facts to follow: 2 or 3", choices=(2, 3)),
    }

    def _world(self, seed: int, params: dict[str, Any]) -> tuple[World, Any]:
        rng = self.rng(seed)
        orgs = rng.sample([f"{a.title()} {n.title()} {k}" for a in ADJECTIVES[:20] for n in NOUNS[:20] for k in _KINDS],
                          max(3, params["docs"] // 3))
        people = rng.sample([f"{f} {s}" for f in FIRST_NAMES for s in LAST_NAMES], 3 * len(orgs))
        towns = [f"{p}{s}" for p in _PREFIXES for s in _SUFFIXES]
        directors = people[:len(orgs)]
        world = World(director=dict(zip(orgs, directors, strict=True)),
                      headquarters={org: rng.choice(towns) for org in orgs},
                      born={person: rng.choice(towns) for person in people},
                      mentor={person: rng.choice([p for p in people if p != person]) for person in directors},
                      deputy={org: rng.choice(people[len(orgs):]) for org in orgs},
                      moved={person: rng.choice(towns) for person in rng.sample(people, len(people) // 3)})
        return world, rng

    def _question(self, world: World, rng: Any, hops: int) -> tuple[str, str, str]:
        org = rng.choice(sorted(world.director))
        if hops == 3:
            born = world.born[world.mentor[world.director[org]]]
            return "mentor_born", QUESTIONS["mentor_born"].format(org=org), born
        if rng.random() < 0.5:
            return "director_born", QUESTIONS["director_born"].format(org=org), world.born[world.director[org]]
        person = world.director[org]
        return "directed_city", QUESTIONS["directed_city"].format(person=person), world.headquarters[org]

    def sample(self, seed: int, params: dict[str, Any]) -> Sample:
        world, rng = self._world(seed, params)
        kind, question, answer = self._question(world, rng, params["hops"])
        return Sample(query=question + " Answer with the town's name only.", expected=answer,
                      scorer={"name": "exact"}, metadata={"docs": params["docs"], "hops": params["hops"], "kind": kind})

    def render(self, seed: int, params: dict[str, Any]) -> str:
        world, rng = self._world(seed, params)
        self._question(world, rng, params["hops"])  # the same draws as sample() before the text's
        facts = [f"The director of the {org} is {person}." for org, person in world.director.items()]
        facts += [f"The {org} is headquartered in {town}." for org, town in world.headquarters.items()]
        facts += [f"{person} was born in {town}." for person, town in world.born.items()]
        facts += [f"{person}'s mentor was {mentor}." for person, mentor in world.mentor.items()]
        facts += [f"The deputy director of the {org} is {person}." for org, person in world.deputy.items()]
        facts += [f"{person} moved to {town} after university." for person, town in world.moved.items()]
        fillers = (lambda: f"Visitors often praise the {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} in the main hall.",
                   lambda: f"The annual report lists {rng.randint(3, 900)} new members.",
                   lambda: f"A {rng.choice(ADJECTIVES)} exhibition about the {rng.choice(NOUNS)} opens in spring.")
        rng.shuffle(facts)
        docs: list[list[str]] = [[] for _ in range(params["docs"])]
        for index, fact in enumerate(facts):
            docs[index % len(docs) if index < len(docs) else rng.randrange(len(docs))].append(fact)
        for doc in docs:
            doc.insert(rng.randrange(len(doc) + 1), rng.choice(fillers)())
        return "\n\n".join(f"Document {number}:\n" + " ".join(doc) for number, doc in enumerate(docs, start=1))
