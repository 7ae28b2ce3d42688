"""litellm's model map as the client reads it: only litellm's "not mapped" answer means unknown.

An unknown window leaves compaction off and an unknown price refuses a dollar budget, so a
litellm failure of another kind (an upgrade that changed the call) must surface, not pass for
"unknown" (issue 18, item 6). The upgrade is simulated by replacing litellm.get_model_info:
litellm is not ours, and no real release fails this way on demand.
"""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rlm_sandbox.models import LLMClient, load_litellm, model_window


def test_only_litellms_not_mapped_answer_means_unknown(monkeypatch: pytest.MonkeyPatch) -> None:
    litellm = load_litellm()
    # litellm's own answer for a model it does not know (ModelNotMappedError): unknown
    assert model_window("scripted/never-mapped") is None
    assert LLMClient.price_of("scripted/never-mapped") is None
    assert model_window("gpt-4o-mini") == 128_000  # a mapped model still has its window

    def old_release(model: str, **_: object) -> dict:  # releases before ModelNotMappedError
        raise Exception(f"This model isn't mapped yet. model={model}, custom_llm_provider=None.")

    monkeypatch.setattr(litellm, "get_model_info", old_release)
    assert model_window("gpt-4o-mini") is None
    assert LLMClient.price_of("gpt-4o-mini") is None

    def changed_release(model: str, **_: object) -> dict:  # an upgrade that broke the call
        raise AttributeError("'ModelInfoBase' object has no attribute 'get'")

    monkeypatch.setattr(litellm, "get_model_info", changed_release)
    for lookup in (model_window, LLMClient.price_of):
        with pytest.raises(AttributeError) as raised:
            lookup("gpt-4o-mini")
        note = "\n".join(raised.value.__notes__)
        assert "litellm.get_model_info('gpt-4o-mini') failed with something other than" in note
        assert "Pin litellm, or give context_window and input_cost_per_token" in note
