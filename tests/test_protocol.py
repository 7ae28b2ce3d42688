"""The framing both sides share, over real sockets: lines, blobs, caps, bad input."""

from __future__ import annotations

import json
import socket
import threading

import pytest

from rlm_sandbox.kernel.protocol import (
    PROTOCOL_VERSION,
    FrameError,
    FrameReader,
    FrameTooLarge,
    FrameWriter,
    StreamClosed,
    encode,
)


@pytest.fixture
def pair():
    left, right = socket.socketpair()
    yield left, right
    left.close()
    right.close()


def reader_for(sock: socket.socket, **kwargs) -> FrameReader:
    kwargs.setdefault("max_line", 1024)
    return FrameReader(sock.fileno(), sock.recv_into, **kwargs)


def test_messages_round_trip_one_per_line(pair):
    left, right = pair
    writer, reader = FrameWriter(left.sendall), reader_for(right)
    messages = [{"type": "exec", "id": 1, "code": "print('a\\nb')\n"}, {"type": "ping", "id": 2},
                {"text": "ünïcödé \U0001F600"}]
    for message in messages:
        writer.send(message)
    assert [reader.read(timeout=1) for _ in messages] == messages


def test_lone_surrogates_survive_encoding():
    line = encode({"text": "bad \udc80 char"})
    assert json.loads(line) == {"text": "bad \udc80 char"}
    assert line.endswith(b"\n") and line.count(b"\n") == 1


def test_blob_travels_raw_after_its_header(pair):
    left, right = pair
    writer, reader = FrameWriter(left.sendall), reader_for(right, max_blob=10_000_000)
    payload = bytes(range(256)) * 20_000  # contains newlines and every byte value
    threading.Thread(target=lambda: (writer.send({"type": "context", "id": 1}, payload),
                                     writer.send({"type": "ping", "id": 2}))).start()
    message = reader.read(timeout=5)
    assert message["blob"] == payload and message["type"] == "context"
    assert reader.read(timeout=5) == {"type": "ping", "id": 2}


def test_oversized_line_is_skipped_whole_and_the_stream_goes_on(pair):
    left, right = pair
    reader = reader_for(right, max_line=100)
    left.sendall(b'{"x": "' + b"a" * 5000 + b'"}\n' + encode({"ok": 1}))
    with pytest.raises(FrameTooLarge):
        reader.read(timeout=1)
    assert reader.read(timeout=1) == {"ok": 1}


@pytest.mark.parametrize("line", [b"garbage\n", b"[1, 2]\n", b"\xff\xfe\n", b'{"blob": -1}\n',
                                  b'{"blob": "ten"}\n', b'{"unterminated": \n'])
def test_malformed_lines_raise_frame_error_and_the_stream_goes_on(pair, line):
    left, right = pair
    reader = reader_for(right)
    left.sendall(line + encode({"ok": 1}))
    with pytest.raises(FrameError):
        reader.read(timeout=1)
    assert reader.read(timeout=1) == {"ok": 1}


def test_blob_over_the_cap_is_refused(pair):
    left, right = pair
    reader = reader_for(right, max_blob=10)
    left.sendall(b'{"blob": 11}\n')
    with pytest.raises(FrameError, match="blob"):
        reader.read(timeout=1)


def test_timeout_keeps_half_read_data(pair):
    left, right = pair
    reader = reader_for(right)
    line = encode({"type": "reply", "id": 7, "ok": True})
    left.sendall(line[:10])
    with pytest.raises(TimeoutError):
        reader.read(timeout=0.05)
    left.sendall(line[10:])
    assert reader.read(timeout=1)["id"] == 7


def test_end_of_stream_is_reported(pair):
    left, right = pair
    reader = reader_for(right)
    left.close()
    with pytest.raises(StreamClosed):
        reader.read(timeout=1)


def test_concurrent_writers_never_interleave_lines(pair):
    left, right = pair
    writer, reader = FrameWriter(left.sendall), reader_for(right, max_line=1_000_000)
    big = "x" * 200_000

    def send_many(tag: int) -> None:
        for i in range(20):
            writer.send({"tag": tag, "i": i, "pad": big})

    threads = [threading.Thread(target=send_many, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    received = [reader.read(timeout=10) for _ in range(80)]
    for thread in threads:
        thread.join()
    assert sorted((m["tag"], m["i"]) for m in received) == [(t, i) for t in range(4) for i in range(20)]


# -- the kernel answers bad input with errors, never by dying -------------------------------

@pytest.fixture
def raw_kernel(make_local_sandbox):
    """A live kernel plus the host's raw connection to it, to send what no host would."""
    sandbox = make_local_sandbox("ctx")
    return sandbox, sandbox._conn


@pytest.mark.parametrize("raw, error_type", [
    (b"not json at all\n", "ProtocolError"),
    (b"[1, 2, 3]\n", "ProtocolError"),
    (b"\xc3\x28\xa0\xa1\n", "ProtocolError"),
    (b'{"type": "exec", "id": 5, "blob": 999999999999999}\n', "ProtocolError"),
    (b"{" + b'"a":1,' * 3_000_000 + b'"b":2}\n', "FrameTooLarge"),
])
def test_kernel_answers_garbage_with_an_error(raw_kernel, raw, error_type):
    sandbox, conn = raw_kernel
    conn._sock.sendall(raw)
    reply = conn.read(timeout=10)
    assert reply["type"] == "reply" and reply["ok"] is False and reply["id"] is None
    assert reply["error"]["type"] == error_type
    assert sandbox.exec("print(context)").stdout == "ctx\n"


@pytest.mark.parametrize("message, error_type", [
    ({"type": "launch_missiles", "id": 9}, "UnknownMessage"),
    ({"type": "exec", "id": 9, "code": 42}, "BadRequest"),
    ({"type": "get", "id": 9, "name": ["x"]}, "BadRequest"),
    ({"type": "context", "id": 9, "kind": "pickle"}, "BadRequest"),
    ({"type": "configure", "id": 9, "callbacks": [{"name": "not an identifier"}]}, "BadRequest"),
    ({"type": "configure", "id": 9, "max_output_chars": "lots"}, "BadRequest"),
])
def test_kernel_answers_bad_requests_with_an_error_naming_the_problem(raw_kernel, message, error_type):
    sandbox, conn = raw_kernel
    conn._sock.sendall(encode(message))
    reply = conn.read(timeout=10)
    assert (reply["id"], reply["ok"], reply["error"]["type"]) == (9, False, error_type)
    assert reply["error"]["message"]
    assert sandbox.exec("print(context)").stdout == "ctx\n"


def test_protocol_version_is_in_the_handshake():
    assert isinstance(PROTOCOL_VERSION, int) and PROTOCOL_VERSION >= 1
