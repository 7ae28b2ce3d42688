"""Every scorer on its edge cases: wrong format, near numbers, case, empty pair sets, answers
wrapped in prose or markdown, and the benchmarks' own rules (OOLONG, RULER, OOLONG-Pairs)."""

from __future__ import annotations

import pytest

from rlm_sandbox.eval.scorers import ScorerError, check_scorer, oolong_parse, parse_number, score


# -- exact / contains -------------------------------------------------------------------

@pytest.mark.parametrize("answer", ["Paris", "paris", "**Paris**", "The Paris.", "  Paris\n"])
def test_exact_normalises_case_markdown_articles_and_punctuation(answer):
    assert score("exact", answer, "Paris") == 1.0


def test_exact_is_not_fooled_by_prose_or_near_misses():
    assert score("exact", "The answer is Paris", "Paris") == 0.0
    assert score("exact", "Parisian", "Paris") == 0.0
    assert score("exact", "Lyon", ["Paris", "Lyon"]) == 1.0  # any of a list
    assert score("exact", "paris", "Paris", {"normalise": False}) == 0.0


def test_contains_finds_the_answer_in_prose():
    assert score("contains", "After checking, it is **Oradell**.", "Oradell") == 1.0
    assert score("contains", "It is Oradel", "Oradell") == 0.0


# -- numbers ---------------------------------------------------------------------------

@pytest.mark.parametrize("text, number", [("$1,105,000", 1105000), ("Total: **$2,822,000**.", 2822000),
                                          ("12 employees earn $640,500", 640500), ("-3.5", -3.5),
                                          ("no digits", None)])
def test_parse_number_takes_the_last_number(text, number):
    assert parse_number(text) == number


def test_numeric_decay_is_exact_at_one_and_decays_with_distance():
    assert score("numeric_decay", "The total is $1,105,000.", "$1,105,000") == 1.0
    assert score("numeric_decay", "41", "42") == pytest.approx(0.75)
    assert score("numeric_decay", "40", "42") == pytest.approx(0.75 ** 2)
    near = score("numeric_decay", "1,116,050", "1,105,000", {"relative": True, "scale": 0.01})
    assert near == pytest.approx(0.75)  # 1% off
    assert score("numeric_decay", "I could not tell", "42") == 0.0  # wrong format


def test_numeric_decay_refuses_bad_options():
    with pytest.raises(ScorerError, match="0 < base < 1"):
        score("numeric_decay", "1", "1", {"base": 2})


# -- set_f1 (OOLONG-Pairs) ----------------------------------------------------------------

def test_pairs_in_any_order_and_form_score_one():
    expected = [[12, 7], "(3, 40)"]
    answer = "Here are the pairs:\n- (7, 12)\n**40, 3**\n"
    assert score("set_f1", answer, expected) == 1.0


def test_pairs_f1_counts_misses_and_extras():
    expected = ["(1, 2)", "(1, 3)", "(2, 3)", "(3, 4)"]
    answer = "(1, 2)\n(2, 1)\n(1, 3)\n(5, 6)"  # a duplicate written the other way, one wrong
    precision, recall = 2 / 3, 2 / 4
    assert score("set_f1", answer, expected) == pytest.approx(2 * precision * recall / (precision + recall))


def test_empty_pair_sets():
    assert score("set_f1", "There are no such pairs.", [], {"pairs": True}) == 1.0  # both empty
    assert score("set_f1", "", []) == 1.0
    assert score("set_f1", "(1, 2)", []) == 0.0
    assert score("set_f1", "none", ["(1, 2)"]) == 0.0


def test_pairs_compare_numerically_not_as_text():
    assert score("set_f1", "(9, 10)", ["(10, 9)"]) == 1.0  # 9 < 10, though "10" < "9" as text


def test_set_f1_of_plain_items():
    assert score("set_f1", "Apple\nbanana\ncherry", ["apple", "banana"]) == pytest.approx(0.8)


# -- regex ------------------------------------------------------------------------------

def test_regex_scorer():
    assert score("regex", "Answer: 7 apples", None, {"pattern": r"\b7 apples\b"}) == 1.0
    assert score("regex", "ANSWER", "answer", {"flags": "i"}) == 1.0
    assert score("regex", "x", "y") == 0.0
    with pytest.raises(ScorerError, match="not a valid pattern"):
        score("regex", "x", "(")


# -- oolong (the official rules) ------------------------------------------------------------

@pytest.mark.parametrize("answer, parsed", [
    ("Label: entity", "entity"),
    ("Answer: **[location]**", "location"),
    ("**Answer:** [location]", " location"),  # as in the official code: the space before '[' stays
    ("entity", "entity"),  # no ':' and short: the whole answer
    ("After careful counting I believe it is numeric", "numeric"),  # no ':' and long: the last word
    ("Answer: description and abstract concept is more common than numeric value", "more common"),
])
def test_oolong_parse(answer, parsed):
    assert oolong_parse(answer) == parsed


def test_oolong_labels_are_case_sensitive_and_exact():
    assert score("oolong", "Label: entity", "entity") == 1.0
    assert score("oolong", "**Label:** [entity]", "entity") == 0.0  # the official parse keeps a space
    assert score("oolong", "Label: Entity", "entity") == 0.0
    assert score("oolong", "Label: an entity", "entity") == 0.0


def test_oolong_numbers_decay_by_075_per_unit():
    assert score("oolong", "Answer: 12", "12") == 1.0
    assert score("oolong", "Answer: 10", "12") == pytest.approx(0.75 ** 2)
    assert score("oolong", "Answer: 12.0", "12") == 0.0  # not an integer: the official rule gives 0
    assert score("oolong", "Answer: twelve", "12") == 0.0


def test_oolong_comparisons():
    long_form = "Answer: entity is less common than location"
    assert score("oolong", long_form, "less common than") == 1.0
    assert score("oolong", long_form, "more common than") == 0.0
    assert score("oolong", "Answer: same frequency as", "same frequency as") == 1.0


def test_oolong_dates_compare_as_dates():
    assert score("oolong", "Answer: 2023-04-08", "Apr 08, 2023") == 1.0
    assert score("oolong", "Answer: April 8, 2023", "2023-04-08") == 1.0
    assert score("oolong", "Answer: 2023-04-09", "2023-04-08") == 0.0


# -- string_match_all (RULER) -------------------------------------------------------------

def test_string_match_all():
    assert score("string_match_all", "The special magic number for x-y is 1234567.", ["1234567"]) == 1.0
    assert score("string_match_all", "It is 1234567", ["1234567", "7654321"]) == 0.5
    assert score("string_match_all", "ABC-def\x00", "abc-DEF") == 1.0  # case-insensitive, control chars gone
    assert score("string_match_all", "123456", "1234567") == 0.0  # a near number is not a match


# -- names, options, custom callables ---------------------------------------------------------

def test_unknown_scorers_and_options_are_named():
    with pytest.raises(ScorerError, match="no scorer named 'exakt'"):
        check_scorer("exakt", {})
    with pytest.raises(ScorerError, match="takes no option 'bas'; its options: base, relative, scale"):
        check_scorer("numeric_decay", {"bas": 2})
    with pytest.raises(ScorerError, match="cannot be loaded"):
        check_scorer("no_such_module_xyz:f", {})


def test_a_python_callable_scorer(tmp_path, monkeypatch):
    (tmp_path / "my_scorers.py").write_text(
        "def half(answer, expected, *, weight=0.5):\n    return weight if answer == expected else 0.0\n"
        "def broken(answer, expected):\n    return 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    check_scorer("my_scorers:half", {"weight": 0.25})
    assert score("my_scorers:half", "a", "a", {"weight": 0.25}) == 0.25
    with pytest.raises(ScorerError, match="outside 0..1"):
        score("my_scorers:broken", "a", "a")
