"""One record/replay wrapping (``models.replay.taped``) for the API, ``rlm-sandbox run`` and
``rlm-sandbox eval``: the same refusals, the same error class, naming the cassette."""

from __future__ import annotations

import pytest

from rlm_sandbox import RLM
from rlm_sandbox.models import LLMClient
from rlm_sandbox.models.cassette import CassetteError
from rlm_sandbox.models.replay import RecordingClient, ReplayClient, taped


def test_a_cassette_that_cannot_be_written_is_a_cassette_error_naming_it(tmp_path):
    (tmp_path / "file").write_text("")  # a file where the cassette's directory should be
    with pytest.raises(CassetteError, match=r"the cassette .*file/tape/cassette.jsonl cannot be written \(.+\); "
                                            "record into a directory you may write to"):
        RLM(model="m", record=tmp_path / "file" / "tape")
    with pytest.raises(CassetteError, match="cannot be written"):  # eval's per-task cassette: the same error
        taped(LLMClient(), record=tmp_path / "file" / "task.jsonl", append=False)


def test_record_and_replay_at_once_are_refused_and_neither_wraps_nothing(tmp_path):
    inner = LLMClient()
    with pytest.raises(TypeError, match="give record= or replay=, not both"):
        taped(inner, record=tmp_path / "a.jsonl", replay=tmp_path / "b.jsonl")
    assert taped(inner) is inner
    recording = taped(inner, record=tmp_path / "a.jsonl", append=False)
    assert isinstance(recording, RecordingClient) and recording.inner is inner
    replaying = taped(inner, replay=tmp_path / "a.jsonl", label="task-1")
    assert isinstance(replaying, ReplayClient) and replaying.inner is inner and replaying.label == "task-1"
    with pytest.raises(CassetteError, match="no cassette at"):
        taped(inner, replay=tmp_path / "missing.jsonl")
