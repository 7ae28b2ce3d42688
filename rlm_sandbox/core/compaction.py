"""Keeping a run's root conversation inside the model's context window.

The data lives in the REPL, so the conversation only has to remind the model what it did.
Every root request is measured before it is sent (litellm's token counter, scaled by how far
the provider's own counts were above it). When it would pass ``compact_at`` of the room the
window leaves for prompts (the window minus the reply's share, at least
``min(max_tokens, window // 4)``), the oldest iterations are folded into a digest appended to
the first user message: what each ran, what it printed or raised, and which variables the
REPL holds now. A digest that grows too long drops notes from the second-oldest on, keeping
the first iteration's (it usually loads the data) as long as one more note fits, and the
newest. The most recent iterations stay whole; folding stops once the request is within
``FOLD_TO`` (0.3) of that limit, so folds are rare and the requests between them short.

Folds are written for providers' prefix caches (issue 21): the requests after a fold repeat
it, so they are cached up to the end; the fold request itself repeats the one before it up to
the digest's old notes, which stay byte-identical (new notes go after them, the variable
listing last). A digest over its share is thinned in one large step (to half its share, and
room for 1.5 times the notes that fold brought), so the next fold only appends to it. If the latest iteration alone
is still too big, its reply and output are clipped in the middle. If even the system prompt
and the query do not fit, nothing the engine can drop would help, and :class:`DoesNotFit`
says so.

The first user message stays a user message and the roles keep alternating (user,
assistant, user, ...), which strict chat templates require.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Literal

from ..errors import LLMContextWindowExceeded
from ..kernel.capture import clip_middle

#: The reply always keeps at least this share of the window (or max_tokens, if smaller).
REPLY_SHARE = 4
#: Folding goes on until the request is within this fraction of the limit (or only the latest
#: iteration is left whole): lower means rarer folds and smaller requests (benchmarks/bench_fold.py).
FOLD_TO = 0.3
#: A digest takes at most this fraction of the limit; older notes are dropped first.
DIGEST_SHARE = 0.3
#: A digest over its share drops notes until it takes at most this fraction of it, and leaves room
#: for 1.5 times the notes that fold added (large steps: the next fold only appends).
DIGEST_THIN_TO = 0.5
#: Per folded iteration: characters of each block's code and of what it showed.
NOTE_CODE_CHARS, NOTE_OUTPUT_CHARS = 300, 300
VARIABLES_CHARS = 1500
#: The smallest piece of the latest iteration worth keeping when it must be clipped.
MIN_CLIPPED_TOKENS = 64
#: What stands where the middle of the latest iteration was clipped.
CLIPPED_MARKER = "\n[... {omitted:,} characters clipped here to fit the model's context window ...]\n"

Message = dict[str, Any]
#: Where a run learnt its context window.
WindowSource = Literal["setting", "litellm", "provider"]
#: ... as messages say it.
_WINDOW_SOURCES: dict[WindowSource, str] = {"setting": "the context_window setting",
                                            "litellm": "litellm's model map", "provider": "the provider's refusal"}

#: How providers state the window when they refuse a request (OpenAI, vLLM, llama.cpp,
#: llama-cpp-python, Anthropic, ...). The first number group is the window.
_WINDOW_IN_ERROR = (
    re.compile(r"maximum context length is (\d[\d,]*)", re.IGNORECASE),
    re.compile(r"context window of (\d[\d,]*)", re.IGNORECASE),
    re.compile(r"context (?:size|length|window)[^0-9]{0,20}\(?(\d[\d,]*) tokens", re.IGNORECASE),
    re.compile(r"n_ctx[^0-9]{0,5}(\d[\d,]*)", re.IGNORECASE),
    re.compile(r"\d[\d,]* tokens? > (\d[\d,]*) maximum", re.IGNORECASE),
)


class DoesNotFit(Exception):
    """The request cannot be brought inside the window by folding or clipping the history."""

    def __init__(self, head_tokens: int, limit: int) -> None:
        super().__init__(f"the system prompt and the query (with the digest of earlier iterations, if any) "
                         f"take {head_tokens:,} tokens, and the window leaves {limit:,} for a prompt")
        self.head_tokens, self.limit = head_tokens, limit


@dataclass(frozen=True)
class Compaction:
    """What one compaction did, for the ``compaction`` event."""

    folded: list[int]  # iterations folded this time
    kept: list[int]  # iterations still whole
    tokens_before: int
    tokens_after: int
    clipped: bool  # the latest iteration had to be clipped


def prompt_room(window: int, max_tokens: int) -> int:
    """Tokens a prompt may take in ``window``, leaving the reply its share."""
    return window - min(max_tokens, window // REPLY_SHARE)


def window_from_error(text: str) -> int | None:
    """The context window a provider's refusal states, if it states one."""
    for pattern in _WINDOW_IN_ERROR:
        match = pattern.search(text)
        if match:
            value = int(match.group(1).replace(",", ""))
            if value >= 64:
                return value
    return None


class ContextWindow:
    """The root model's context window in one run, and where it came from.

    The ``context_window`` setting wins; else litellm's model map; else it is unknown (the
    history is sent whole) until the provider refuses a request as too long, which teaches
    it: the window the refusal states, or a guess a little below what was sent. A refusal
    below a window already believed means the provider counts more than we do: it shrinks.
    """

    def __init__(self, model: str, setting: int | None, lookup: Callable[[str], int | None]) -> None:
        self.model = model
        self._setting, self._lookup = setting, lookup
        self._known: tuple[int, WindowSource] | None = None

    def known(self) -> tuple[int, WindowSource] | None:
        """(tokens, source), or None while no source has said."""
        if self._known is None:
            found = self._setting or self._lookup(self.model)
            if found:
                self._known = (found, "setting" if self._setting else "litellm")
        return self._known

    def prompt_limit(self, max_tokens: int, compact_at: float) -> int | None:
        """Tokens a request may take before older iterations are folded; None while unknown."""
        known = self.known()
        return None if known is None else int(prompt_room(known[0], max_tokens) * compact_at)

    def reply_limit(self, prompt_tokens: int, max_tokens: int) -> int:
        """The reply may use what the prompt leaves of the window, up to ``max_tokens``."""
        known = self.known()
        return max_tokens if known is None else max(1, min(max_tokens, known[0] - prompt_tokens))

    def learn(self, refusal: str, sent_tokens: int) -> None:
        """A refusal as too long of a request of ``sent_tokens``: take the window it states,
        or assume one a little below what was sent."""
        guess = window_from_error(refusal) or int(sent_tokens * 0.9)
        if self._known is not None and guess >= self._known[0]:
            guess = int(self._known[0] * 0.8)  # the provider counts more than we thought: shrink
        self._known = (guess, "provider")

    def does_not_fit(self, problem: DoesNotFit | None,
                     overflow: LLMContextWindowExceeded | None) -> LLMContextWindowExceeded:
        """Why the run's own conversation cannot be sent, and what setting changes it."""
        known = self.known()
        where = (f"the model's context window ({known[0]:,} tokens, from {_WINDOW_SOURCES[known[1]]})"
                 if known else "the model's context window")
        said = f" The provider said: {overflow.detail.rstrip('.')}." if overflow is not None else ""
        if problem is not None:
            what = f"{problem}, leaving no room for the latest iteration"
        else:
            what = "it was refused as too long even after folding older iterations into a digest"
        return LLMContextWindowExceeded(
            f"the run's own conversation with the root model does not fit {where}: {what}.{said} Set "
            "context_window to the model's real window if it is not that, lower max_tokens (the reply's share) "
            "or max_output_chars (the output shown per turn), shorten the query, or use a model with a longer "
            "window.", model=self.model, transient=False)


def iteration_note(iteration: int, reply: str, cells: list[tuple[str, str]], remark: str = "") -> str:
    """One folded iteration, compact: each block's code and what it showed, or the reply's prose."""
    lines = [f"Iteration {iteration}:"]
    if not cells:
        lines.append(f"  no code ran. Reply: {clip_middle(' '.join(reply.split()), NOTE_OUTPUT_CHARS)}")
    for index, (code, shown) in enumerate(cells, start=1):
        code_text = clip_middle(code.strip(), NOTE_CODE_CHARS).replace("\n", "\n      ")
        lines.append(f"  block {index}:\n      {code_text}")
        lines.append("    -> " + clip_middle(shown.strip(), NOTE_OUTPUT_CHARS).replace("\n", "\n       "))
    if remark:
        lines.append(f"  {remark}")
    return "\n".join(lines)


def digest(notes: list[str], variables: str | None, *, dropped: int = 0, first_kept: bool = True) -> str:
    """The text that replaces folded iterations in the first user message."""
    parts = ["[Earlier iterations of this run were folded into this digest to keep the conversation inside "
             "the model's context window. Their code ran in the REPL, which still holds every variable they "
             "created; print a variable to see it again.]"]
    shown_first = 1 if first_kept else 0  # the first iteration usually loads the data: kept while it can be
    parts.extend(notes[:shown_first])
    if dropped:
        parts.append(f"[the notes of {dropped} {'later' if first_kept else 'older'} iteration(s) are not shown]")
    parts.extend(notes[shown_first:])
    if variables:
        parts.append("Variables in the REPL now (memory_status()):\n" + clip_middle(variables.strip(), VARIABLES_CHARS))
    return "\n".join(parts)


@dataclass(frozen=True)
class DigestNotes:
    """The notes a digest shows, kept from one fold to the next: a fold adds its notes after
    them, so the digest's text stays byte-identical up to the variable listing and the prefix
    providers cache survives the fold. Notes after the first are thinned (oldest first) only
    when the digest outgrows its share, and then in one large step. The first iteration's
    note (it usually loads the data) is hidden only in a fold where it leaves no room."""

    notes: tuple[str, ...] = ()  # the first iteration's note, then the later ones still shown
    dropped: int = 0  # later notes thinned out

    def text(self, variables: str | None, first_kept: bool = True) -> str:
        if first_kept or not self.notes:
            return digest(list(self.notes), variables, dropped=self.dropped)
        return digest(list(self.notes[1:]), variables, dropped=self.dropped + 1, first_kept=False)

    def adding(self, notes: list[str]) -> DigestNotes:
        return replace(self, notes=self.notes + tuple(notes))

    def can_thin(self) -> bool:
        """True while a note other than the first and the newest is shown."""
        return len(self.notes) > 2

    def thinned(self) -> DigestNotes:
        """Without the oldest note after the first."""
        return replace(self, notes=self.notes[:1] + self.notes[2:], dropped=self.dropped + 1)


class History:
    """One run's root conversation: what is sent (``messages``), everything said (``transcript``),
    and a note per iteration so folded ones can be summarised.

    ``messages`` is ``head`` (the system prompt and the first user message, or that user
    message alone when the system prompt is folded into it) followed by (reply, feedback)
    pairs, one per iteration. Messages are never edited in place: a changed one is a new
    dict, so the events' ``base`` (found by identity) stays right.
    """

    def __init__(self, head: list[Message], count: Callable[[list[Message]], int]) -> None:
        self.messages: list[Message] = list(head)
        self.transcript: list[Message] = list(head)
        self.head = len(head)
        self._first_user = head[-1]["content"]
        self._count = count
        self._counts: dict[int, tuple[Message, int]] = {}
        self.iterations: list[int] = []  # the iteration of each pair still in ``messages``
        self.notes: list[str] = []  # and its note
        self.folded: list[str] = []  # notes of folded iterations, oldest first
        self.shown = DigestNotes()  # those the digest shows
        self.scale = 1.0  # provider's prompt tokens / ours, at least 1 (learnt from replies)

    # -- building --------------------------------------------------------------------------

    def say(self, role: str, content: str) -> Message:
        message = {"role": role, "content": content}
        self.messages.append(message)
        self.transcript.append(message)
        return message

    def append_to_last(self, text: str) -> None:
        """Add ``text`` to the last (user) message, as a new message: a request of our own
        (answer now) keeps the roles alternating, as strict chat templates require."""
        last = self.messages[-1]
        merged = {"role": last["role"], "content": f"{last['content']}\n\n{text}"}
        self.messages[-1] = merged
        if self.transcript[-1] is last:
            self.transcript[-1] = merged
        else:  # the last message was clipped to fit: the transcript keeps it whole
            original = self.transcript[-1]
            self.transcript[-1] = {"role": original["role"], "content": f"{original['content']}\n\n{text}"}

    def noted(self, iteration: int, note: str) -> None:
        """The iteration whose reply and feedback were just said, and its note for a digest."""
        self.iterations.append(iteration)
        self.notes.append(note)

    # -- measuring -------------------------------------------------------------------------

    def count(self, message: Message) -> int:
        cached = self._counts.get(id(message))
        if cached is None or cached[0] is not message:
            cached = (message, self._count([message]))
            self._counts[id(message)] = cached
        return cached[1]

    def tokens(self, messages: list[Message] | None = None) -> int:
        """Tokens of ``messages`` (default: what would be sent), as the provider will likely count them."""
        raw = sum(self.count(m) for m in (self.messages if messages is None else messages))
        return int(raw * self.scale) + 1

    def text_tokens(self, text: str) -> int:
        return int(self._count([{"role": "user", "content": text}]) * self.scale) + 1

    def calibrate(self, sent: list[Message], reported_input_tokens: int) -> None:
        """Learn how much more the provider counts than litellm's counter does (never less than 1)."""
        ours = sum(self.count(m) for m in sent)
        if ours > 0 and reported_input_tokens > 0:
            self.scale = min(max(1.0, reported_input_tokens / ours), 3.0)

    # -- folding ---------------------------------------------------------------------------

    def fit(self, limit: int, variables: str | None, extra_tokens: int = 0) -> Compaction | None:
        """Fold and clip until what is sent, plus ``extra_tokens``, is within ``limit``.

        Returns what was done, or None when it already fit; raises DoesNotFit when even
        the head alone is too big."""
        before = self.tokens() + extra_tokens
        if before <= limit:
            return None
        pairs = (len(self.messages) - self.head) // 2
        target = int(limit * FOLD_TO)
        folded, candidate, shown = 0, self.messages, self.shown
        for count in range(1, pairs):  # the latest iteration stays whole (clipped only if it must be)
            folded = count
            candidate, shown = self._folded(count, variables, limit)
            if self.tokens(candidate) + extra_tokens <= target:
                break
        clipped = False
        if self.tokens(candidate) + extra_tokens > limit:
            candidate, clipped = self._clip_latest(candidate, limit - extra_tokens)
        newly = self.iterations[:folded]
        self.folded.extend(self.notes[:folded])
        self.shown = shown
        del self.notes[:folded], self.iterations[:folded]
        self.messages = candidate
        return Compaction(folded=newly, kept=list(self.iterations), tokens_before=before,
                          tokens_after=self.tokens() + extra_tokens, clipped=clipped)

    def _folded(self, count: int, variables: str | None, limit: int) -> tuple[list[Message], DigestNotes]:
        """The messages with the ``count`` oldest remaining iterations folded into the digest,
        and the notes that digest shows. New notes go after the ones shown so far, so the
        requests after this fold repeat the last digest's text up to its variable listing."""
        # at most DIGEST_SHARE of the limit, and half of what the bare head leaves: the latest
        # iteration must still fit beside it (a long system prompt in a small window)
        bare = [*self.messages[:self.head - 1], {"role": "user", "content": self._first_user}]
        budget = min(int(limit * DIGEST_SHARE), (limit - self.tokens(bare)) // 2)
        shown, first_kept = self.shown.adding(self.notes[:count]), True

        def fits() -> bool:
            return self.text_tokens(shown.text(variables, first_kept)) <= budget

        if not fits():  # one large step: room is left for the next fold's notes (half as many again as these)
            added = self.text_tokens("\n".join(self.notes[:count]))
            room = min(budget * DIGEST_THIN_TO, budget - added * 3 // 2)
            while shown.can_thin() and self.text_tokens(shown.text(variables)) > room:
                shown = shown.thinned()
        while shown.can_thin() and not fits():  # notes after the first go, oldest first
            shown = shown.thinned()
        while variables and len(variables) > 400 and not fits():  # then most of the variable listing
            variables = clip_middle(variables, len(variables) // 2)
        if len(shown.notes) == 2 and not fits():  # then the first note, in this fold only
            first_kept = False
        while variables and len(variables) > 120 and not fits():
            variables = clip_middle(variables, len(variables) // 2)
        first = {"role": "user", "content": f"{self._first_user}\n\n{shown.text(variables, first_kept)}"}
        return [*self.messages[:self.head - 1], first, *self.messages[self.head + 2 * count:]], shown

    def _clip_latest(self, messages: list[Message], limit: int) -> tuple[list[Message], bool]:
        """Clip the latest reply and feedback in the middle so ``messages`` fit ``limit``."""
        head_tokens = self.tokens(messages[:self.head])
        tail = messages[self.head:]
        room = limit - head_tokens - 8 * len(tail)
        if not tail or room < MIN_CLIPPED_TOKENS:
            raise DoesNotFit(head_tokens, limit)
        sizes = [self.count(m) * self.scale for m in tail]
        for squeeze in (0.9, 0.7, 0.5, 0.3):  # the clip notes take room too: measure, and squeeze harder
            clipped = []
            for message, size in zip(tail, sizes, strict=True):
                share = room * size / sum(sizes)
                chars = int(len(message["content"]) * share / max(size, 1) * squeeze)
                clipped.append({"role": message["role"],
                                "content": clip_middle(message["content"], max(chars, 120), CLIPPED_MARKER)})
            fitted = [*messages[:self.head], *clipped]
            if self.tokens(fitted) <= limit:
                return fitted, True
        raise DoesNotFit(head_tokens, limit)

