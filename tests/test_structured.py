"""answer_schema: answers validated into a pydantic model, with repair by the model."""

from __future__ import annotations

import pytest
from pydantic import BaseModel

from rlm_sandbox.testing import ScriptedModel
from tests.rlm_helpers import feedback, make_rlm

pytestmark = [pytest.mark.docker, pytest.mark.loop]  # tests the loop: the local sandbox in the fast tier


class Payroll(BaseModel):
    department: str
    total_salary: int
    employees: list[str]


CONTEXT = [{"name": "Ada", "dept": "Eng", "salary": 100}, {"name": "Bo", "dept": "Ops", "salary": 50},
           {"name": "Cy", "dept": "Eng", "salary": 70}]


def test_final_var_of_a_dict_is_validated_into_the_model(sandbox_factory):
    root = ScriptedModel(["```repl\neng = [r for r in context if r['dept'] == 'Eng']\n"
                          "out = {'department': 'Eng', 'total_salary': sum(r['salary'] for r in eng), "
                          "'employees': [r['name'] for r in eng]}\n```\nFINAL_VAR(out)"])
    result = make_rlm(sandbox_factory, root, answer_schema=Payroll).run("Engineering payroll?", CONTEXT)
    assert result.parsed == Payroll(department="Eng", total_salary=170, employees=["Ada", "Cy"])
    assert isinstance(result.answer, str) and '"total_salary": 170' in result.answer
    assert '"total_salary"' in root.calls[0][0]["content"]  # the schema is in the system prompt


def test_a_validation_error_goes_back_to_the_model_to_fix(sandbox_factory):
    root = ScriptedModel([
        "```repl\nout = {'department': 'Eng', 'total_salary': 'lots'}\nFINAL_VAR('out')\n```",
        "```repl\nout = {'department': 'Eng', 'total_salary': 170, 'employees': ['Ada', 'Cy']}\n```\nFINAL_VAR(out)",
    ])
    result = make_rlm(sandbox_factory, root).run("q", CONTEXT, answer_schema=Payroll)
    told = feedback(root, 1)
    assert "does not match the required schema" in told and "total_salary" in told and "employees" in told
    assert result.parsed.total_salary == 170 and result.iterations == 2


def test_json_text_in_final_is_validated_too(sandbox_factory):
    root = ScriptedModel(['FINAL({"department": "Ops", "total_salary": 50, "employees": ["Bo"]})'])
    result = make_rlm(sandbox_factory, root, answer_schema=Payroll).run("q", CONTEXT)
    assert result.parsed.employees == ["Bo"]


def test_other_pydantic_types_work(sandbox_factory):
    root = ScriptedModel(["```repl\nFINAL([r['salary'] for r in context])\n```"])
    result = make_rlm(sandbox_factory, root, answer_schema=list[int]).run("q", CONTEXT)
    assert result.parsed == [100, 50, 70]
