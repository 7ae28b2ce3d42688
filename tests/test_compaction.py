"""The folding rule on its own (issue 9, item 3): a run's conversation is kept inside a
window by folding old iterations into a digest, keeping the latest whole, clipping it only
when it alone is too big, and saying so when even the system prompt and query do not fit.
The counter is a plain characters-per-token rule, so every figure is exact."""

from __future__ import annotations

import pytest

from rlm_sandbox.core.compaction import (
    DoesNotFit,
    History,
    digest,
    iteration_note,
    prompt_room,
    window_from_error,
)


def count(messages: list[dict]) -> int:
    return sum(len(m["content"]) for m in messages) // 4 + 3 * len(messages)


def history_with(turns: int, output_chars: int = 400) -> History:
    history = History([{"role": "system", "content": "s" * 400}, {"role": "user", "content": "Query: q"}], count)
    for n in range(1, turns + 1):
        code = f"step_{n} = {n}\nprint('x' * {output_chars})"
        history.say("assistant", f"```repl\n{code}\n```")
        shown = "[output]\n" + "x" * output_chars
        history.say("user", shown)
        history.noted(n, iteration_note(n, "", [(code, shown)]))
    return history


def rebuilt(requests: list[list[dict]]) -> list[list[dict]]:
    """What a trace reader rebuilds from (base, new messages), base found by identity as the loop does."""
    out, previous = [], []
    for messages in requests:
        base = 0
        while base < min(len(messages), len(previous)) and messages[base] is previous[base]:
            base += 1
        out.append((previous[:base] if out else []) + messages[base:])
        previous = list(messages)
    return out


def test_nothing_changes_while_the_request_fits():
    history = history_with(3)
    before = list(history.messages)
    assert history.fit(limit=10_000, variables=None) is None
    assert history.messages == before and history.folded == []


def test_old_iterations_are_folded_into_the_first_user_message_and_the_latest_kept_whole():
    history = history_with(6)
    sent_before = list(history.messages)
    limit = history.tokens() - 50
    done = history.fit(limit=limit, variables="step_1  int  28 bytes")
    assert done is not None and done.folded and done.kept[-1] == 6 and not done.clipped
    assert done.tokens_after <= limit // 2 + 1 or done.kept == [6]
    assert history.tokens() <= limit
    first = history.messages[1]
    assert first["role"] == "user" and first["content"].startswith("Query: q")
    newest = done.folded[-1]
    assert f"Iteration {newest}:" in first["content"] and f"step_{newest} = {newest}" in first["content"]  # what ran
    assert "Variables in the REPL now" in first["content"] and "step_1  int" in first["content"]
    assert history.messages[-2:] == sent_before[-2:]  # the latest iteration, untouched
    assert history.messages[-1] is sent_before[-1]
    roles = [m["role"] for m in history.messages]
    assert roles[0] == "system" and roles[1:] == ["user", "assistant"] * (len(roles) // 2 - 1) + ["user"]
    assert len(history.transcript) == 2 + 2 * 6  # nothing is lost from the transcript


def test_folding_keeps_the_base_rule_of_the_events_right():
    history = history_with(4)
    first = list(history.messages)
    history.fit(limit=history.tokens() - 10, variables=None)
    second = list(history.messages)
    assert rebuilt([first, second]) == [first, second]
    assert second[0] is first[0] and second[1] is not first[1]  # base 1: the system prompt is kept


def test_the_latest_iteration_is_clipped_when_it_alone_is_too_big():
    history = history_with(2, output_chars=20_000)
    limit = 3000
    done = history.fit(limit=limit, variables=None)
    assert done is not None and done.clipped and history.tokens() <= limit
    assert "characters clipped here to fit the model's context window" in history.messages[-1]["content"]
    assert history.transcript[-1]["content"] == "[output]\n" + "x" * 20_000  # the transcript keeps it whole


def test_when_even_the_system_prompt_and_query_do_not_fit_it_says_so():
    history = history_with(1)
    with pytest.raises(DoesNotFit, match="the system prompt and the query"):
        history.fit(limit=60, variables=None)


def test_a_long_digest_keeps_the_first_note_and_drops_the_next_oldest():
    history = history_with(40, output_chars=50)
    assert history.tokens() > 800
    done = history.fit(limit=800, variables=None)
    text = history.messages[1]["content"]
    assert "later iteration(s) are not shown" in text and "Iteration 1:" in text and "Iteration 2:" not in text
    assert text.index("Iteration 1:") < text.index("are not shown") < text.index(f"Iteration {done.folded[-1]}:")
    assert history.tokens() <= 800


def test_the_answer_now_request_is_merged_into_the_last_user_message():
    history = history_with(2)
    last = history.messages[-1]
    history.append_to_last("Give your best final answer now.")
    assert history.messages[-1] is not last and history.messages[-1]["content"].endswith("answer now.")
    assert history.messages[-2]["role"] == "assistant"  # roles still alternate


def test_the_scale_learnt_from_the_provider_raises_the_estimate():
    history = history_with(1)
    ours = history.tokens()
    history.calibrate(history.messages, reported_input_tokens=2 * ours)
    assert history.tokens() >= 2 * ours - 2
    history.calibrate(history.messages, reported_input_tokens=1)  # never below our own count
    assert history.scale == 1.0


def test_the_reply_keeps_its_share_of_the_window():
    assert prompt_room(128_000, 4096) == 128_000 - 4096
    assert prompt_room(4096, 4096) == 4096 - 1024  # a quarter at least, when max_tokens would take it all


@pytest.mark.parametrize("text, window", [
    ("This model's maximum context length is 4096 tokens. However, you requested 5000 tokens", 4096),
    ("Requested tokens (5000) exceed context window of 2048", 2048),
    ("the request exceeds the available context size (8192 tokens), try increasing it", 8192),
    ("prompt is too long: 210,000 tokens > 200,000 maximum", 200_000),
    ("the prompt was too long", None),
])
def test_the_window_a_refusal_states_is_read(text, window):
    assert window_from_error(text) == window


def test_a_note_says_what_ran_and_what_it_showed():
    note = iteration_note(3, "", [("total = sum(values)\nprint(total)", "[output]\n42")])
    assert note.startswith("Iteration 3:") and "total = sum(values)" in note and "42" in note
    prose = iteration_note(4, "I think the answer is blue.", [])
    assert "no code ran" in prose and "blue" in prose
    assert digest([note], None).count("Iteration") == 1


def test_the_digest_leaves_room_for_the_latest_iteration_beside_a_long_system_prompt():
    # found with a real model: a 1,000-token system prompt in a 2,048-token window; the digest
    # took its full share and the latest iteration could no longer be sent at all
    history = History([{"role": "system", "content": "s" * 3600}, {"role": "user", "content": "Query: q"}], count)
    for n in range(1, 4):
        history.say("assistant", "x" * 800)
        history.say("user", "[output]\n" + "y" * 300)
        history.noted(n, iteration_note(n, "", [(f"step_{n} = {n}\nprint('{'z' * 250}')", "[output]\n" + "y" * 300)]))
    limit = 1300
    done = history.fit(limit=limit, variables="v" * 1500)
    assert done is not None and done.kept == [3] and history.tokens() <= limit


# -- issue 21, part B: folds keep the prefix providers cache -------------------------------------

def test_a_fold_goes_well_below_the_limit_so_folds_are_rare():
    history = history_with(12, output_chars=2000)  # notes keep 300 characters of each output
    limit = history.tokens() - 50
    done = history.fit(limit=limit, variables=None)
    assert done is not None and done.tokens_after <= limit * 0.3 and done.kept[-1] == 12


def test_a_later_fold_repeats_the_earlier_digest_up_to_its_variable_listing():
    """Each fold adds its notes after the ones shown, so the fold request starts with the previous
    digest (without its variable listing), which a provider's prefix cache serves. When the digest
    outgrows its share it is thinned in one large step, leaving room for the next fold's notes:
    of two folds in a row, at most one rewrites the notes."""
    output = "[output]\n" + "x" * 2000
    history = history_with(1, output_chars=2000)
    firsts = []
    for turn in range(2, 60):
        if history.fit(limit=6000, variables="step_1  int  28 bytes") is not None:
            firsts.append(history.messages[1]["content"])
        code = f"step_{turn} = {turn}\nprint('x' * 2000)"
        history.say("assistant", f"```repl\n{code}\n```")
        history.say("user", output)
        history.noted(turn, iteration_note(turn, "", [(code, output)]))
    notes = [first.split("\nVariables in the REPL now")[0] for first in firsts]
    appended = [later.startswith(earlier) and len(later) > len(earlier)
                for earlier, later in zip(notes, notes[1:], strict=False)]
    assert len(firsts) >= 6 and "are not shown" in firsts[-1]  # the digest was thinned
    assert any(appended) and all(one or two for one, two in zip(appended, appended[1:], strict=False)), appended
