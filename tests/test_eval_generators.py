"""Generators are deterministic per seed, lazy, and their ground truth is right: answers
re-derived from the rendered text by another method (the oracle's text rules, which never see
the generator's data) agree with the expected answers. Task files are checked whole."""

from __future__ import annotations

import json

import pytest

from rlm_sandbox.eval.generators import GeneratorError
from rlm_sandbox.eval.generators.oolong_records import LABELS, templates
from rlm_sandbox.eval.generators.sniah import DEPTHS, NEEDLE, NOISE
from rlm_sandbox.eval.oracle import POLICIES
from rlm_sandbox.eval.scorers import score
from rlm_sandbox.eval.tasks import TaskFileError, generate_tasks, load_tasks, write_tasks

SUITES = [("salary", {"difficulty": "1,2,3"}), ("sniah", {"tokens": "512,2048"}), ("oolong", {}),
          ("oolong-pairs", {"users": "6,12"}), ("multi-hop", {"hops": "2,3"})]


@pytest.mark.parametrize("name, params", SUITES)
def test_generators_are_deterministic_per_seed(name, params):
    first = generate_tasks(name, n=4, seed=11, params=params)
    again = generate_tasks(name, n=4, seed=11, params=params)
    other = generate_tasks(name, n=4, seed=12, params=params)
    assert [t.model_dump() for t in first] == [t.model_dump() for t in again]
    assert [t.load_context() for t in first] == [t.load_context() for t in again]
    assert [t.query for t in first] != [t.query for t in other] or \
        [t.load_context() for t in first] != [t.load_context() for t in other]


@pytest.mark.parametrize("name, params", SUITES)
def test_ground_truth_rederived_from_the_text(name, params):
    for task in generate_tasks(name, n=12, seed=5, params=params):
        text = task.load_context()
        answers = [policy.direct(text, task.query) for policy in POLICIES]
        answer = next(a for a in answers if a is not None)
        assert score(task.scorer.name, answer, task.expected, task.scorer.options) == 1.0, (task.id, answer)


def test_oolong_labels_by_template_match_the_expected_counts():
    """A second, independent check: each instance's label recovered by matching the generator's
    templates as patterns (not the oracle's keyword rules), then counted."""
    import re
    from collections import Counter

    patterns = [(label, re.compile("^" + re.escape(t).replace(r"\{", "{").replace(r"\}", "}")
                                   .replace("{acronym}", ".+").replace("{place}", ".+").replace("{work}", ".+")
                                   .replace("{thing}", ".+").replace("{concept}", ".+").replace("{creature}", ".+")
                                   .replace("{event}", ".+") + "$"))
                for label, group in templates().items() for t in group]
    for task in generate_tasks("oolong", n=6, seed=3, params={"kind": "count"}):
        labels = Counter()
        for line in task.load_context().splitlines():
            question = line.split("|| Instance: ", 1)[1]
            matching = {label for label, pattern in patterns if pattern.match(question)}
            assert len(matching) == 1, question  # the templates are unambiguous
            labels[matching.pop()] += 1
        asked = re.search(r"label '([^']+)'", task.query).group(1)
        assert str(labels[asked]) == task.expected and asked in LABELS


def test_sniah_follows_rulers_recipe():
    assert len(DEPTHS) == 40 and DEPTHS[0] == 0 and DEPTHS[-1] == 100 and DEPTHS[20] == 51
    task = generate_tasks("sniah", n=1, seed=1, params={"tokens": 4096})[0]
    text = task.load_context()
    value = task.expected[0]
    assert len(value) == 7 and value.isdigit()
    assert NEEDLE.format(key=task.metadata["key"], value=value) in text.splitlines()
    assert text.count(NOISE) == len(text.splitlines()) - 1
    assert abs(len(text) / 4 - 4096) < 64 and len(text) == task.metadata["chars"]
    assert task.query == f"What is the special magic number for {task.metadata['key']} mentioned in the provided text?"


def test_salary_lengths_match_the_original_table():
    for records, chars in ((100, 24_000), (200, 49_000)):
        task = generate_tasks("salary", n=1, params={"records": records})[0]
        assert abs(len(task.load_context()) - chars) < 2_000


def test_contexts_are_built_only_when_a_task_runs(tmp_path):
    tasks = generate_tasks("sniah", n=2, params={"tokens": 10_000_000})  # 40 MB each, when rendered
    write_tasks(tasks, tmp_path / "big.jsonl")
    assert (tmp_path / "big.jsonl").stat().st_size < 2_000  # the file holds the recipe, not the text
    loaded = load_tasks(tmp_path / "big.jsonl")
    assert loaded[0].generator.seed == tasks[0].generator.seed and loaded[0].context is None


def test_bad_generator_requests_are_named():
    with pytest.raises(GeneratorError, match="no generator named 'snaih'"):
        generate_tasks("snaih")
    with pytest.raises(GeneratorError, match="has no parameter token; its parameters: tokens"):
        generate_tasks("sniah", params={"token": 5})
    with pytest.raises(GeneratorError, match="tokens='big': not an integer"):
        generate_tasks("sniah", params={"tokens": "big"})
    with pytest.raises(GeneratorError, match="use one of 1, 2, 3"):
        generate_tasks("salary", params={"difficulty": 4})


def test_a_task_file_is_checked_whole_before_anything_runs(tmp_path):
    good = {"id": "a", "query": "q", "context": "c", "expected": "x", "scorer": {"name": "exact"}}
    lines = [json.dumps(good), "{not json", json.dumps({**good, "id": "b", "scorer": {"name": "exakt"}}),
             json.dumps({**good, "id": "c", "context_file": "missing.txt", "context": None}),
             json.dumps({**good, "id": "a"}), json.dumps({**good, "id": "d", "budget": {"max_cost_usd": -1}}),
             json.dumps({**good, "id": "e", "pass_threshold": 2}),
             json.dumps({**good, "id": "f", "context": None, "generator": {"name": "sniah", "params": {"x": 1}}}),
             json.dumps({"id": "g", "query": "q", "scorer": {"name": "exact"}, "colour": "red"}),
             json.dumps({**good, "id": "h", "generator": {"name": "sniah"}})]
    (tmp_path / "tasks.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(TaskFileError) as caught:
        load_tasks(tmp_path / "tasks.jsonl")
    text = str(caught.value)
    for expected in ("line 2: not JSON", "line 3, field 'scorer': no scorer named 'exakt'",
                     "line 4, field 'context_file':", "missing.txt does not exist",
                     "line 5, field 'id': 'a' is also the id on line 1", "line 6, field 'budget': max_cost_usd",
                     "line 7, field 'pass_threshold'", "line 8, field 'generator'", "has no parameter x",
                     "line 10, field 'generator': give the context once", "line 9, field 'colour'", "nothing was run"):
        assert expected in text, (expected, text)


def test_context_files_are_relative_to_the_task_file(tmp_path):
    (tmp_path / "ctx.txt").write_text("hello world")
    (tmp_path / "data.json").write_text('{"a": [1, 2]}')
    lines = [{"id": "t", "query": "q", "context_file": "ctx.txt", "expected": "x", "scorer": {"name": "exact"}},
             {"id": "u", "query": "q", "context_file": "data.json", "expected": "x", "scorer": {"name": "exact"}}]
    (tmp_path / "tasks.jsonl").write_text("\n".join(map(json.dumps, lines)))
    tasks = load_tasks(tmp_path / "tasks.jsonl")
    assert tasks[0].load_context() == "hello world" and tasks[1].load_context() == {"a": [1, 2]}
