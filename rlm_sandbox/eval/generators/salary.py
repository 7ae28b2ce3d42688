"""``salary``: the original RLM project's benchmark: N employee records, "total salary of
department D".

Records are written in that project's record layout (``Entry N:`` then Name, Age, Department,
Annual Salary, Performance Rating, Years at Company, Projects Completed), with an id, an email
and an office added so that 100 and 200 records come to about 24k and 49k characters, the
lengths of its published table.
Difficulty 2 adds notes full of numbers that are not salaries; difficulty 3 adds raises and
transfers that change the answer, which must be applied in order. Scored by ``numeric_decay``
on the relative error (exact to pass).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .base import Generator, Param, Sample
from .words import DEPARTMENTS, FIRST_NAMES, LAST_NAMES, PERFORMANCE


@dataclass
class Employee:
    name: str
    age: int
    department: str
    salary: int
    performance: str
    years: int
    projects: int


@dataclass(frozen=True)
class Update:
    """A line after the records: a raise (new salary) or a transfer (new department)."""

    name: str
    salary: int | None = None
    department: str | None = None


HEADER = ("\n=== COMPANY EMPLOYEE DATABASE ===\nGenerated for RLM Long Document Processing Demo\n\n"
          "This document contains detailed employee records.\n"
          "Each entry includes name, age, department, salary, and performance data.\n")


class Salary(Generator):
    name = "salary"
    description = "the original RLM salary benchmark: N employee records, total salary of a department"
    params = {
        "records": Param(int, 100, "employee records (the original table: 100 and 200)", minimum=1),
        "difficulty": Param(int, 1, "1 plain records; 2 adds notes with other numbers; 3 adds raises and transfers",
                            choices=(1, 2, 3)),
        "departments": Param(int, 5, "how many departments", minimum=2),
    }

    def _draw(self, seed: int, params: dict[str, Any]) -> tuple[list[Employee], str, list[str], list[Update]]:
        rng = self.rng(seed)
        departments = list(DEPARTMENTS[:min(params["departments"], len(DEPARTMENTS))])
        names = [f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES]
        rng.shuffle(names)
        if params["records"] > len(names):
            raise ValueError(f"salary records={params['records']}: at most {len(names)}")
        staff = [Employee(name=names[i], age=rng.randint(22, 64), department=rng.choice(departments),
                          salary=rng.randrange(40_000, 200_001, 500), performance=rng.choice(PERFORMANCE),
                          years=rng.randint(0, 30), projects=rng.randint(0, 60))
                 for i in range(params["records"])]
        target = rng.choice(departments)
        notes: list[str] = []
        updates: list[Update] = []
        if params["difficulty"] >= 2:
            for _ in range(max(1, len(staff) // 10)):
                notes.append(f"Note: the {rng.choice(departments)} department's travel budget for Q{rng.randint(1, 4)} "
                             f"is ${rng.randrange(5_000, 90_001, 250):,}; {rng.randint(2, 40)} laptops were ordered.")
        if params["difficulty"] >= 3:
            for employee in rng.sample(staff, max(1, len(staff) // 8)):
                if rng.random() < 0.5:
                    updates.append(Update(employee.name, salary=employee.salary + rng.randrange(1_000, 20_001, 500)))
                else:
                    moved_to = rng.choice([d for d in departments if d != employee.department])
                    updates.append(Update(employee.name, department=moved_to))
        return staff, target, notes, updates

    def sample(self, seed: int, params: dict[str, Any]) -> Sample:
        staff, target, _, updates = self._draw(seed, params)
        salary = {e.name: e.salary for e in staff}
        department = {e.name: e.department for e in staff}
        for update in updates:  # applied in the order they are written
            if update.salary is not None:
                salary[update.name] = update.salary
            if update.department is not None:
                department[update.name] = update.department
        total = sum(salary[name] for name in salary if department[name] == target)
        after = " after applying every update (raises and transfers) listed after the records" \
            if params["difficulty"] >= 3 else ""
        query = (f"What is the total annual salary of all employees in the {target} department{after}? "
                 "Answer with the dollar amount.")
        return Sample(query=query, expected=f"${total:,}",
                      scorer={"name": "numeric_decay", "options": {"relative": True, "scale": 0.01}},
                      metadata={"records": params["records"], "difficulty": params["difficulty"],
                                "department": target})

    def render(self, seed: int, params: dict[str, Any]) -> str:
        staff, _, notes, updates = self._draw(seed, params)
        blocks = [HEADER]
        every = max(1, len(staff) // (len(notes) + 1)) if notes else 0
        for index, e in enumerate(staff):
            email = e.name.lower().replace(" ", ".") + "@example.com"
            blocks.append(f"\nEntry {index + 1}:\n  Employee ID: E{index + 1:05d}\n  Name: {e.name}\n  Email: {email}\n"
                          f"  Age: {e.age}\n  Department: {e.department}\n  Annual Salary: ${e.salary:,}\n"
                          f"  Performance Rating: {e.performance}\n  Years at Company: {e.years}\n"
                          f"  Projects Completed: {e.projects}\n  Office: Building {1 + index % 7}\n")
            if notes and (index + 1) % every == 0 and (index + 1) // every <= len(notes):
                blocks.append(f"\n{notes[(index + 1) // every - 1]}\n")
        if updates:
            blocks.append("\n=== UPDATES (apply in order) ===\n")
            for update in updates:
                if update.salary is not None:
                    blocks.append(f"Update: {update.name}'s annual salary was raised to ${update.salary:,}.\n")
                else:
                    blocks.append(f"Update: {update.name} transferred to the {update.department} department.\n")
        return "\n".join(blocks)
