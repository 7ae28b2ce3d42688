"""``Sandbox.assign``: binding variables from one blob, as SandboxInterpreter does before each of
DSPy's cells, on every provider and transport (Docker over its socket and over stdio, local)."""

from __future__ import annotations

import pytest

from rlm_sandbox.errors import ContextTypeError, ProtocolError
from rlm_sandbox.sandbox.kernel_sandbox import KEEP_BYTES
from rlm_sandbox.sandbox.replies import raise_for_error

pytestmark = pytest.mark.docker


def test_values_of_every_kind_arrive_as_they_were(make_sandbox):
    sb = make_sandbox("the context")
    sb.assign({"text": "naïve \ud800 text", "raw": b"\x00\xff", "data": {"rows": [1, 2.5, None]}, "n": 7,
               "flag": True, "nothing": None})
    out = sb.exec("print(repr(text), raw, data, n, flag, nothing, context)").stdout
    assert out == "'naïve \\ud800 text' b'\\x00\\xff' {'rows': [1, 2.5, None]} 7 True None the context\n"


def test_a_big_string_sent_again_unchanged_travels_once(make_sandbox):
    sb = make_sandbox()
    big, other = "b" * (2 * KEEP_BYTES), "o" * (2 * KEEP_BYTES)
    sb.assign({"doc": big, "q": "first"})
    sent = sb.assigned_bytes
    sb.exec("doc = 'changed by the cell'")
    sb.assign({"doc": big, "q": "second"})  # the same object: only its name travels
    assert sb.assigned_bytes - sent == len("second")
    assert sb.exec("print(len(doc), q)").stdout == f"{len(big)} second\n"
    sb.assign({"doc": other})  # another value under the name is sent, and kept instead
    sb.assign({"doc": big})  # the first one is no longer kept: sent again
    assert sb.assigned_bytes - sent == len("second") + 2 * len(other)
    assert sb.exec("print(doc[0], len(doc))").stdout == f"b {len(big)}\n"


def test_a_reset_forgets_what_was_kept(make_sandbox):
    sb = make_sandbox()
    big = "k" * KEEP_BYTES
    sb.assign({"doc": big})
    sb.reset()
    sent = sb.assigned_bytes
    sb.assign({"doc": big})
    assert sb.assigned_bytes - sent == len(big)
    assert sb.exec("print(len(doc))").stdout == f"{len(big)}\n"


def test_bad_variables_are_refused_and_change_nothing(make_sandbox):
    sb = make_sandbox()
    with pytest.raises(ValueError, match="must be a Python identifier"):
        sb.assign({"not a name": 1})
    with pytest.raises(ContextTypeError, match="variable x holds something that is not JSON-compatible"):
        sb.assign({"x": object()})
    conn = sb._connection()  # a forged request, as a broken host would send: refused whole
    reply = conn.request("assign", timeout=5, blob=b"abc", vars=[{"name": "a", "kind": "str", "size": 3},
                                                                  {"name": "b", "kind": "kept"}])
    with pytest.raises(ProtocolError, match="NotKept"):
        raise_for_error(reply)
    assert "NameError" in str(sb.exec("a").error)
