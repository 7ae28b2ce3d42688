"""A long document answered by chunked sub-queries.

    python examples/long_document.py [--sandbox local|docker] [--quiet | --verbose]

A ~1.5 MB report (300 sections of filler) hides a few facts such as "Project Falcon's
budget is $4,250,000.", next to distractors ("Project Osprey's budget is still under
discussion."). The query asks for the combined budget. No model reads 1.5 MB at once:
the root model splits `context` into ~100,000-character chunks inside the sandbox, asks
a sub-model one focused question per chunk with `llm_query_batched`, and adds up the
answers in code. Offline, the root is a script of real code and the sub-model a function
that reads its chunk with a regex; set RLM_SANDBOX_MODEL (and RLM_SANDBOX_SUB_MODEL) for real ones.
Exit code 0 when the answer matches the ground truth, 1 otherwise.
"""

from __future__ import annotations

import random
import re
import sys

from _models import choose_models, numbers_in, parse_args, print_stats, sandbox_failed

SEED = 7
SECTIONS = 300
QUERY = ("What is the combined budget, in dollars, of all the projects whose budget the document "
         "states as an amount? Give the total and the projects it includes.")

TEAMS = ["platform", "data", "security", "mobile", "billing", "research", "design", "legal"]
VERBS = ["reviewed", "postponed", "documented", "discussed", "approved", "revisited", "summarised"]
NOUNS = ["roadmap", "hiring plan", "incident report", "vendor contract", "test strategy",
         "migration checklist", "onboarding guide", "capacity forecast", "travel policy"]
WHEN = ["during the weekly sync", "after the offsite", "before the quarterly review",
        "in a short memo", "at the all-hands meeting", "without further comment"]
TOPICS = ["Operations review", "Team updates", "Facilities", "Hiring", "Customer feedback",
          "Infrastructure", "Quality", "Planning notes"]

BUDGETED = ["Falcon", "Kestrel", "Pelican", "Condor", "Albatross", "Magpie"]
DISTRACTORS = [
    "Project Osprey's budget is still under discussion.",
    "Project budgets are reviewed by the finance committee every quarter.",
    "The Project Heron kickoff was moved to Thursday; 14 people attended.",
    "Project Kestrel's team grew to 23 engineers this year.",
]


def filler(rng: random.Random) -> str:
    return (f"The {rng.choice(TEAMS)} team {rng.choice(VERBS)} the {rng.choice(NOUNS)} "
            f"{rng.choice(WHEN)}.")


def make_document(seed: int = SEED) -> tuple[str, dict[str, int]]:
    """The document and the budgets planted in it (the ground truth)."""
    rng = random.Random(seed)
    budgets = {name: rng.randrange(250_000, 9_000_000, 5_000) for name in BUDGETED}
    planted = [f"Project {name}'s budget is ${amount:,}." for name, amount in budgets.items()]
    # Each fact and distractor goes into its own section, somewhere in its middle.
    placements = dict(zip(rng.sample(range(SECTIONS), len(planted) + len(DISTRACTORS)),
                          planted + DISTRACTORS, strict=True))
    sections = []
    for number in range(SECTIONS):
        paragraphs = [" ".join(filler(rng) for _ in range(rng.randint(6, 10))) for _ in range(8)]
        if number in placements:
            paragraph = rng.randrange(len(paragraphs))
            sentences = paragraphs[paragraph].split(". ")
            sentences.insert(rng.randrange(1, len(sentences)), placements[number].rstrip("."))
            paragraphs[paragraph] = ". ".join(sentences)
        sections.append(f"## Section {number + 1}: {rng.choice(TOPICS)}\n\n" + "\n\n".join(paragraphs) + "\n\n")
    return "".join(sections), budgets


# The offline root model, one reply per turn: peek, fan out over chunks, aggregate.
SCRIPT = [
    """The document is long, so first its size and structure.
```repl
import re
print(len(context), "characters")
print(context[:200])
headers = re.findall(r"(?m)^## .*$", context)
print(len(headers), "section headers; the first:", headers[:2])
```""",
    """It is made of `## ` sections. I will pack whole sections into chunks of at most ~100,000 \
characters (so no sentence is cut in two) and ask a sub-model about each chunk.
```repl
sections = re.split(r"(?m)^(?=## )", context)
chunks, current = [], ""
for section in sections:
    if current and len(current) + len(section) > 100_000:
        chunks.append(current)
        current = ""
    current += section
if current:
    chunks.append(current)
assert "".join(chunks) == context
question = ("Does the text above state the budget of any project as an amount of money? For each such project "
            "write one line 'Project NAME: AMOUNT' (the amount in dollars, digits only). Ignore budgets "
            "without an amount. If there is none, answer exactly: none")
prompts = [f"Part {i + 1} of {len(chunks)} of a long document:\\n<<<\\n{chunk}\\n>>>\\n\\n{question}"
           for i, chunk in enumerate(chunks)]
answers = llm_query_batched(prompts)
print(len(chunks), "chunks; sizes", [len(c) for c in chunks])
for i, answer in enumerate(answers):
    if answer.strip().lower() != "none":
        print(f"chunk {i}: {answer.strip()}")
```""",
    """Now I combine the sub-answers in code and check each figure against the document.
```repl
budgets = {}
for answer in answers:
    for name, amount in re.findall(r"Project\\s+([\\w-]+)\\s*:\\s*\\$?([\\d,]+)", answer):
        budgets[name] = int(amount.replace(",", ""))
for name, amount in budgets.items():
    assert f"Project {name}" in context and f"{amount:,}" in context, (name, amount)
total = sum(budgets.values())
answer = f"{total:,} dollars in all, from {len(budgets)} projects: " + ", ".join(
    f"{name} {amount:,}" for name, amount in sorted(budgets.items()))
print(answer)
FINAL(answer)
```""",
]

FACT = re.compile(r"Project ([A-Z][\w-]*)'s budget is \$([\d,]+)")


def sub_model(messages: list[dict]) -> str:
    """The offline sub-model: reads the prompt it was sent and reports the budgets in it."""
    prompt = messages[-1]["content"]
    found = FACT.findall(prompt)
    if not found:
        return "none"
    return "\n".join(f"Project {name}: {amount.replace(',', '')}" for name, amount in found)


def main() -> int:
    args = parse_args(__doc__.splitlines()[0])
    document, budgets = make_document()
    expected = sum(budgets.values())
    models = choose_models(SCRIPT, sub_responder=sub_model)
    print(f"model: {models.description}")
    if not args.quiet:
        print(f"context: a generated report of {len(document):,} characters, {SECTIONS} sections, "
              f"{len(budgets)} planted budgets; sandbox: {args.sandbox}")
        print(f"query: {QUERY}")

    import rlm_sandbox
    from rlm_sandbox.errors import RLMSandboxError

    try:
        result = rlm_sandbox.RLM(models.model, sub_model=models.sub_model, max_iterations=12, verbose=args.verbose,
                                 sandbox=args.sandbox).run(QUERY, document)
    except RLMSandboxError as exc:
        return sandbox_failed(exc, args.sandbox)

    correct = result.status == "completed" and expected in numbers_in(result.answer)
    print(f"answer: {result.answer}")
    print(f"expected: {expected:,} dollars (" + ", ".join(f"{k} {v:,}" for k, v in sorted(budgets.items())) + ")")
    print(f"correct: {'yes' if correct else 'NO'}")
    print_stats(result)
    return 0 if correct else 1


if __name__ == "__main__":
    sys.exit(main())
