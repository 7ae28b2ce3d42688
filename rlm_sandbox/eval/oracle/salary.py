"""The oracle on ``salary``: chunk on record boundaries, have the sub-model extract records and
updates, apply them in order in code, sum the department."""

from __future__ import annotations

import re

QUERY = re.compile(r"total annual salary of all employees in the (\w+) department")
ASK = ("Extract every employee record and every update from the text below. Reply with one line per item, in "
       "the order they appear: 'RECORD | name | department | salary' for a record, 'RAISE | name | new salary' "
       "for a raise, 'TRANSFER | name | new department' for a transfer. Salaries as plain integers. Nothing else.\n\n")

ROOT = '''department = DEPARTMENT
blocks, current, size = [], [], 0
for line in context.split("\\n"):
    if line.startswith("Entry ") and size > 8000:  # chunks end on a record boundary
        blocks.append("\\n".join(current))
        current, size = [], 0
    current.append(line)
    size += len(line) + 1
blocks.append("\\n".join(current))
replies = llm_query_batched([ASK + block for block in blocks])
salary, department_of = {}, {}
for reply in replies:  # in text order: records first, then the updates in the order written
    for row in reply.splitlines():
        parts = [part.strip() for part in row.split("|")]
        if parts[0] == "RECORD" and len(parts) == 4:
            salary[parts[1]], department_of[parts[1]] = int(parts[3]), parts[2]
        elif parts[0] == "RAISE" and len(parts) == 3:
            salary[parts[1]] = int(parts[2])
        elif parts[0] == "TRANSFER" and len(parts) == 3:
            department_of[parts[1]] = parts[2]
total = sum(amount for name, amount in salary.items() if department_of.get(name) == department)
print(f"{len(blocks)} chunks, {len(salary)} employees, {department}: {total}")
answer = f"${total:,}"
FINAL_VAR("answer")'''

_ITEM = re.compile(r"^  Name: (?P<name>.+)$|^  Department: (?P<department>\w+)$|^  Annual Salary: \$(?P<salary>[\d,]+)$"
                   r"|^Update: (?P<raised>.+?)'s annual salary was raised to \$(?P<new>[\d,]+)\.$"
                   r"|^Update: (?P<moved>.+?) transferred to the (?P<to>\w+) department\.$", re.MULTILINE)


def extract(text: str) -> list[str]:
    """The sub-model's rule: every record and update of the text, in order, one line each."""
    items, name, department = [], None, None
    for match in _ITEM.finditer(text):
        if match.group("name"):
            name, department = match.group("name").strip(), None
        elif match.group("department"):
            department = match.group("department")
        elif match.group("salary") and name and department:
            items.append(f"RECORD | {name} | {department} | {match.group('salary').replace(',', '')}")
            name = None
        elif match.group("raised"):
            items.append(f"RAISE | {match.group('raised')} | {match.group('new').replace(',', '')}")
        elif match.group("moved"):
            items.append(f"TRANSFER | {match.group('moved')} | {match.group('to')}")
    return items


def root_code(query: str) -> str | None:
    match = QUERY.search(query)
    if not match:
        return None
    return ROOT.replace("DEPARTMENT", repr(match.group(1))).replace("ASK + block", f"{ASK!r} + block")


def sub_answer(prompt: str) -> str | None:
    return "\n".join(extract(prompt)) if prompt.startswith(ASK[:40]) else None


def direct(text: str, query: str) -> str | None:
    match = QUERY.search(query)
    if not match:
        return None
    salary: dict[str, int] = {}
    department_of: dict[str, str] = {}
    for row in extract(text):
        parts = [part.strip() for part in row.split("|")]
        if parts[0] == "RECORD":
            salary[parts[1]], department_of[parts[1]] = int(parts[3]), parts[2]
        elif parts[0] == "RAISE":
            salary[parts[1]] = int(parts[2])
        else:
            department_of[parts[1]] = parts[2]
    total = sum(amount for name, amount in salary.items() if department_of.get(name) == match.group(1))
    return f"${total:,}"
