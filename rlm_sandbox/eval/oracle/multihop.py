"""The oracle on ``multi-hop``: follow the chain one fact at a time; each hop gathers the
documents naming the entity in code and asks the sub-model one question about them."""

from __future__ import annotations

import re

_NAME = r"([A-Z][a-z]+ [A-Z][a-z]+)"
_QUERIES = (
    (re.compile(r"In which town was the director of the (.+?) born\?"), ("director", "born")),
    (re.compile(r"In which town is the organisation directed by (.+?) headquartered\?"), ("directs", "headquarters")),
    (re.compile(r"In which town was the mentor of the director of the (.+?) born\?"), ("director", "mentor", "born")),
)
#: Each hop: the question asked (about {x}) and the sentence that answers it in a document.
HOPS = {
    "director": ("Who is the director of the {x}?", r"The director of the {x} is " + _NAME + r"\."),
    "directs": ("Which organisation does {x} direct?", r"The director of the ([^.]+?) is {x}\."),
    "headquarters": ("In which town is the {x} headquartered?", r"The {x} is headquartered in ([A-Z][a-z]+)\."),
    "born": ("In which town was {x} born?", r"(?<![A-Za-z]){x} was born in ([A-Z][a-z]+)\."),
    "mentor": ("Who was the mentor of {x}?", r"(?<![A-Za-z]){x}'s mentor was " + _NAME + r"\."),
}
ASK_END = " Reply with the name only, or NONE.\n\n"

ROOT = '''docs = context.split("\\n\\n")
def hop(entity, question):
    hits = [doc for doc in docs if entity in doc]
    print(f"{question} ({len(hits)} documents mention {entity})")
    return llm_query(question + ASK_END + "\\n\\n".join(hits)).strip()
entity = START
for question in QUESTIONS:
    entity = hop(entity, question.replace("{x}", entity))
answer = entity
FINAL_VAR("answer")'''


def _match(query: str) -> tuple[str, tuple[str, ...]] | None:
    for pattern, hops in _QUERIES:
        found = pattern.search(query)
        if found:
            return found.group(1), hops
    return None


def _answer(kind: str, entity: str, text: str) -> str | None:
    found = re.search(HOPS[kind][1].replace("{x}", re.escape(entity)), text)
    return found.group(1) if found else None


def root_code(query: str) -> str | None:
    matched = _match(query)
    if matched is None:
        return None
    start, hops = matched
    questions = [HOPS[kind][0] for kind in hops]
    return (ROOT.replace("ASK_END", repr(ASK_END)).replace("START", repr(start))
            .replace("QUESTIONS", repr(questions)))


def sub_answer(prompt: str) -> str | None:
    question, marker, text = prompt.partition(ASK_END)
    if not marker:
        return None
    for kind, (asked, _) in HOPS.items():
        pattern = re.escape(asked).replace(re.escape("{x}"), "(.+)")
        found = re.fullmatch(pattern, question)
        if found:
            return _answer(kind, found.group(1), text) or "NONE"
    return None


def direct(text: str, query: str) -> str | None:
    matched = _match(query)
    if matched is None:
        return None
    entity: str | None = matched[0]
    for kind in matched[1]:
        entity = _answer(kind, entity, text) if entity else None
    return entity or "I could not tell."
