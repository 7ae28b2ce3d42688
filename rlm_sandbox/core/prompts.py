"""Every text the model reads, in one place, so wording is reviewed together.

The context is described (type, size, a short preview), never included.
"""

from __future__ import annotations

import json
from typing import Any

from ..kernel.capture import clip_middle
from ..sandbox.base import ExecResult

PREVIEW_CHARS = 300
#: The smallest context window (tokens) whose runs get the system prompt's long form.
LONG_FORM_MIN_WINDOW = 16_384


def describe_context(context: Any) -> str:
    """Type, size and a short preview of the context, for the first user message."""
    if isinstance(context, str):
        lines = context.count("\n") + 1 if context else 0
        return (f"a str of {len(context):,} characters ({lines:,} lines). It starts:\n"
                f"{_preview(context)}")
    if isinstance(context, (bytes, bytearray)):
        return f"bytes, {len(context):,} long. They start: {bytes(context[:120])!r}"
    if isinstance(context, list):
        kinds = sorted({type(item).__name__ for item in context[:1000]})
        sizes = [_size(item) for item in context[:8]]
        size_label = "Keys per item (first items)" if kinds == ["dict"] else "Lengths of the first items"
        total = sum(len(item) for item in context if isinstance(item, str))
        text = f"a list of {len(context):,} items (types: {', '.join(kinds) or 'none'})"
        if total:
            text += f", {total:,} characters of text in all"
        if sizes:
            text += f". {size_label}: {sizes}"
        if context:
            text += f". The first item starts:\n{_preview(context[0])}"
        return text
    if isinstance(context, dict):
        keys = list(context)[:20]
        return (f"a dict with {len(context):,} keys; the first: {keys}. "
                f"Sizes of their values: {[_size(context[k]) for k in keys[:8]]}")
    if context is None:
        return "None (there is no context; answer with code and sub-queries alone)"
    return f"a {type(context).__name__}"


def _size(item: Any) -> int | str:
    try:
        return len(item)
    except TypeError:
        return type(item).__name__


def _preview(item: Any) -> str:
    text = item if isinstance(item, str) else json.dumps(item, ensure_ascii=False, default=str)
    shown = text[:PREVIEW_CHARS]
    more = f"\n[... {len(text) - PREVIEW_CHARS:,} more characters]" if len(text) > PREVIEW_CHARS else ""
    return f"<<<\n{shown}\n>>>{more}"


def system_prompt(*, offload_threshold: int | None, preview_chars: int, max_output_chars: int,
                  tools: dict[str, str] | None = None, answer_schema: str | None = None,
                  long_form: bool = True) -> str:
    """The instructions, the same for every run with the same settings, tools and answer schema.

    Nothing task-specific is here (the context's description and the query are in
    :func:`first_user_message`), so the runs of a suite and the child runs of a recursive run
    send the same system prompt, and providers' prefix caches reuse it. What varies with the
    settings comes last: the output rule, host tools and the answer schema (a child run has no
    schema, so it still shares everything before them with its parent). In its long form (guidance
    on sub-call prompts, a worked example) it weighs over 1,024 tokens, the least providers cache
    (measured in docs/DECISIONS.md, "Issue 21, part B"); ``long_form=False`` is for models whose
    window is small or unknown (:data:`LONG_FORM_MIN_WINDOW`)."""
    if offload_threshold is not None:
        output_rule = (
            f"Output longer than {offload_threshold:,} characters is not shown whole: it is kept in a "
            f"variable named `_result_N` and you see its first {preview_chars:,} characters. Read kept "
            "output in slices, e.g. `print(_result_0[:5000])`; a block that names a `_result_N` "
            f"variable is shown (up to {max_output_chars:,} characters) instead of being kept again.")
    else:
        output_rule = (f"Output longer than {max_output_chars:,} characters is cut in the middle; "
                       "print what you need in pieces.")
    tool_lines = "".join(f"- `{signature}`: {doc}\n" for signature, doc in (tools or {}).items())
    if tool_lines:
        tool_lines = "\nHost tools (they run outside the sandbox and count as sub-calls):\n" + tool_lines
    schema_rule = ""
    if answer_schema:
        schema_rule = ("\nThe answer must be JSON matching this schema; build it as a dict in a variable "
                       f"and finish with FINAL_VAR('name'):\n{answer_schema}\n")
    example = f"\n\n{_LONG_FORM}" if long_form else ""
    settings_part = f"## Output in this run\n{output_rule}\n{tool_lines}{schema_rule}".rstrip()
    return f"{_STATIC_INSTRUCTIONS}{example}\n\n{settings_part}"


#: The part of the system prompt that no setting changes (see :func:`system_prompt`).
_STATIC_INSTRUCTIONS = """You answer a query about a context that is too large to read at once. The context is NOT in \
this conversation: it is the variable `context` in a Python REPL, and you explore it by writing code. The first \
user message gives the query and describes `context` (its type, size and a short preview).

## The REPL
Write Python in fenced blocks that start with ```repl (```python blocks run too; other blocks do not). \
Blocks run in order in a persistent, sandboxed Python session: variables survive between blocks and turns. \
You see what a block prints; a block's last expression is displayed, as in a REPL. The sandbox has no \
network; use the standard library.

Available in the REPL:
- `context`: the data the first message describes.
- `llm_query(prompt: str, model: str | None = None) -> str`: ask a sub-model a question. It cannot see \
`context`: put the text it needs into the prompt (chunks of up to ~100,000 characters work well).
- `llm_query_batched(prompts: list[str], model: str | None = None) -> list[str]`: many prompts at once, \
run concurrently, answers in the same order. Far faster than calling llm_query in a loop. Instructions \
shared by many prompts go first, word for word the same, and each chunk last. If any prompt \
fails it raises and every answer is lost; `llm_query_batched(prompts, return_exceptions=True)` returns \
them all instead, a failed prompt's place holding a dict `{'error': 'LLMError', 'message': ...}` (or \
'BudgetExceeded') rather than a str: check `isinstance(answer, str)` and retry or skip the others.
- `memory_status()`: the variables you hold, with sizes. `forget(*names)`: delete ones you no longer need \
(`context` and these helpers cannot be deleted).
- `rlm_query(query, context=None) -> str`: a sub-RLM with its own REPL holding `context` answers `query` \
(for big sub-problems; costs more than llm_query). `rlm_query_batched([query or (query, context), ...]) -> \
list[str]` runs several at once (`return_exceptions=True` works there too).
- `budget_status()`: this run's limits and what is used so far (read-only).
- `FINAL(answer)`: finish with this answer. `FINAL_VAR(name)`: finish with the value of variable `name`.

## Finishing
When you are sure, call FINAL(...) or FINAL_VAR('name') in a ```repl block, or write FINAL(your answer) \
or FINAL_VAR(variable_name) at the start of a line outside code blocks. Verify before you answer.

## Strategy
1. Peek: check the type, size and a sample of `context`.
2. Search: find what matters with Python (str.find, re.finditer, splitting on structure).
3. Chunk and sub-query: split big parts into chunks and ask llm_query_batched focused questions.
4. Aggregate in code: combine partial answers in variables with Python, not in your head.
5. Verify: check the answer against the context with code before you give it.
Take small steps: a block or two per turn, then read the output."""


#: Guidance and a worked example of the strategy, left out for models whose window is under
#: LONG_FORM_MIN_WINDOW tokens or unknown: there its ~470 tokens would crowd out the run's own iterations.
_LONG_FORM = """## Prompts for sub-calls
A sub-model sees only its prompt, so each prompt must say everything: the task, the exact answer format, \
and the text to work on. When many prompts share the same instructions (one per chunk), put the shared \
instructions first, word for word the same in every prompt, and the chunk last: providers cache a repeated \
prompt start, so the shared part is then paid for once. Ask for answers your code can parse (one item per \
line, `key: value`, or JSON) and say what to answer when the chunk holds nothing relevant (e.g. `NONE`).

## Output you print
Print summaries (counts, lengths, a few examples), not whole data: what you print is read back to you on \
every later turn, and long output is kept out of sight anyway (see below).

## Example
Say the query is "What is the total of all refunds in the log?" and `context` is a long str. First turn, peek:
```repl
print(len(context), context.count("\\n"))
print(context[:800])
```
Next turn, having seen one record per line and some lines mentioning refunds:
```repl
import re
lines = [line for line in context.splitlines() if "refund" in line.lower()]
print(len(lines), lines[:3])
```
Too many lines to judge by eye, so the sub-model reads them in chunks, shared instructions first:
```repl
task = ("Each line below is a log record. For every record that is a refund, write its amount as a "
        "number, one per line; write NONE if there is no refund.\\n\\nRecords:\\n")
chunks = ["\\n".join(lines[i:i + 400]) for i in range(0, len(lines), 400)]
answers = llm_query_batched([task + chunk for chunk in chunks], return_exceptions=True)
amounts = [float(x) for a in answers if isinstance(a, str) for x in a.split() if re.fullmatch(r"-?[0-9.]+", x)]
failed = [i for i, a in enumerate(answers) if not isinstance(a, str)]
print(len(amounts), sum(amounts), "failed chunks:", failed)
```
Then retry any failed chunk, check a few amounts against their lines, and finish with \
`FINAL(str(round(sum(amounts), 2)))`."""


def first_user_message(query: str, context: Any) -> str:
    """The query and the description of `context`: the task-specific part of the first request.

    It starts with the query (traces and the scripted oracle read it there)."""
    return (f"Query: {query}\n\nThe context is in the REPL as `context`, which is {describe_context(context)}\n\n"
            "Explore it with ```repl blocks before answering; do not guess.")


def folded_system_prompt(system: str, first_user: str) -> str:
    """The first user message when the model's chat template drops system messages
    (``supports_system_message=False``): the instructions travel in the user turn."""
    return f"{system}\n\n---\n\n{first_user}"


def reply_cut(*, cut_off: bool, max_tokens: int | None, unclosed: bool, blocks_run: int) -> str:
    """What the model is told about a reply cut off at the token limit, or one that left a block open."""
    limit = f" (max_tokens={max_tokens})" if max_tokens else ""
    if cut_off:
        said = f"Your reply was cut off at the token limit{limit}."
        advice = " Write shorter replies: a small block or two per turn, long text kept in variables, not printed."
    else:
        said, advice = "", " Close every block with ``` on a line of its own."
    if unclosed:
        said += " Its last ```repl block was not closed, so it was NOT run."
    ran = {0: " No complete block ran.", 1: " The complete block before it ran (see above)."}.get(
        blocks_run, f" The {blocks_run} complete blocks before it ran (see above).")
    return (said + ran + advice).strip()


def final_cut_off() -> str:
    return ("Your FINAL(...) was cut off at the token limit before it closed, so it was not accepted. Put a long "
            "answer in a variable in a ```repl block and finish with FINAL_VAR('name').")


def final_too_long(chars: int) -> str:
    return (f"Your FINAL answer was longer than the sandbox lets an answer be: only its first {chars:,} characters "
            "arrived, so it was not accepted. Answer with what was asked for (a count, a list, a summary), "
            "not the data itself.")


def no_code_nudge() -> str:
    return ("Your reply had no ```repl block and no FINAL(...). Write code in a ```repl block to make "
            "progress, or give the answer as FINAL(answer) / FINAL_VAR(name) at the start of a line.")


def final_rejected_after_error() -> str:
    return ("Your FINAL was not accepted because code in the same reply failed (see above). Fix the code, "
            "check the result, then answer again.")


def missing_final_var(name: str) -> str:
    return (f"FINAL_VAR({name}) was not accepted: the REPL has no variable named `{name}`. Assign the "
            "answer to a variable in a ```repl block first, then answer again.")


def stalled_reason(rule: str, count: int) -> str:
    """Why the run stops early, as the answer-now request tells the model."""
    if rule == "repeated_reply":
        return f"You have sent the same reply {count} times in a row, with the same result, so the run is stopped."
    return f"Your last {count} replies ran no code and gave no FINAL, so the run is stopped."


def last_chance(reason: str = "You have used every iteration.") -> str:
    return (f"{reason} Give your best final answer now, from what you have found so far, as FINAL(answer) "
            "or FINAL_VAR(name). Do not write code.")


def format_cell(index: int, total: int, result: ExecResult, max_output_chars: int) -> str:
    """What the model reads about one cell it ran."""
    label = f"[block {index + 1} of {total}]" if total > 1 else "[output]"
    parts = [label]
    if result.stdout:
        parts.append(result.stdout.rstrip("\n"))
    if result.offloaded:
        parts.append(f"[output was {result.offloaded.chars:,} characters; the preview above is its start. "
                     f"All of it is in `{result.offloaded.name}`: read it in slices, e.g. "
                     f"print({result.offloaded.name}[:5000])]")
    if result.stderr:
        parts.append("[stderr]\n" + result.stderr.rstrip("\n"))
    if result.error:
        trace = result.error.traceback.strip()
        verdict = str(result.error)
        if trace and not _names_the_error(trace, result.error.type):  # e.g. a timeout: the trace shows where
            trace += f"\n{verdict}"                                     # it stopped, the verdict why
        parts.append(f"[error] {trace or verdict}")
        if result.restarted:
            parts.append(f"[the sandbox was restarted: {result.error.message}]")
    if result.final:
        parts.append("[FINAL was called]")
    if len(parts) == 1:
        parts.append("(no output)")
    return clip_middle("\n".join(parts), max_output_chars)


def _names_the_error(trace: str, error_type: str) -> bool:
    """True when the traceback's last line already states the error (``SyntaxError: ...``).

    A SyntaxError's message repeats what its traceback says, with the cell name and line
    appended (``'(' was never closed (<cell-1>, line 2)``); the traceback shows the line
    itself, so it is enough once."""
    last = trace.rstrip().rsplit("\n", 1)[-1]
    return last == error_type or last.startswith(f"{error_type}:")


def skipped_blocks(count: int) -> str:
    return f"[{count} later block(s) were not run because this one failed]"
