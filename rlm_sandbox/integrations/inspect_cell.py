"""The cell inspect's sandbox operations run in our kernel (standard library only).

inspect_sandbox.py sends this file's source as the body of a cell, followed by one call
``_rlm_inspect_run(job_id)``. Nothing of the request is written into the code: the cell
asks the host for the job with ``inspect_job(job_id)`` (a host callback), moves payloads
in base64 chunks with ``inspect_chunk``/``inspect_put`` (so 50 MB travels under the
protocol's line caps), and reports the outcome with ``inspect_done``. Commands run with
``subprocess`` from an argument list: no shell unless the caller's own ``cmd`` asks for one.

It defines functions only: importing it on the host does nothing.
"""

import base64
import os
import signal
import subprocess
import threading

_RLM_INSPECT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _rlm_inspect_error(exc, path):
    return {"error": {"type": type(exc).__name__, "message": exc.strerror or str(exc), "path": path}}


def _rlm_inspect_feed(job_id, chunks, stdin):
    try:
        for index in range(chunks):
            stdin.write(base64.b64decode(inspect_chunk(job_id, index)))  # noqa: F821 - a host callback
    except BrokenPipeError:
        pass  # the command stopped reading: what it read is what it got, as with a pipe
    finally:
        try:
            stdin.close()
        except BrokenPipeError:
            pass


def _rlm_inspect_drain(stream, limit, out):
    """Read a stream to its end, keeping its last ``limit`` bytes (and whether more came)."""
    kept = bytearray()
    while True:
        block = stream.read(1 << 16)
        if not block:
            break
        kept += block
        if len(kept) > limit:
            out["over"] = True
            del kept[:len(kept) - limit]
    out["data"] = bytes(kept)


def _rlm_inspect_exec(job_id, job):
    env = {"PATH": _RLM_INSPECT_PATH, "HOME": job["home"], "LANG": "C.UTF-8"}
    env.update(job["env"])
    has_input = job["chunks"] is not None
    try:
        proc = subprocess.Popen(job["cmd"], cwd=job["cwd"], env=env, start_new_session=True,
                                stdin=subprocess.PIPE if has_input else subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except FileNotFoundError as exc:
        if job["cwd"] and not os.path.isdir(job["cwd"]):
            return _rlm_inspect_error(exc, job["cwd"])
        _rlm_inspect_send(job_id, "stderr", f"{job['cmd'][0]}: command not found\n".encode(), job["chunk"])
        return {"returncode": 127, "over": False}
    except OSError as exc:
        return _rlm_inspect_error(exc, job["cmd"][0])
    outs = {"stdout": {"over": False}, "stderr": {"over": False}}
    threads = [threading.Thread(target=_rlm_inspect_drain, args=(proc.stdout, job["limit"], outs["stdout"])),
               threading.Thread(target=_rlm_inspect_drain, args=(proc.stderr, job["limit"], outs["stderr"]))]
    if has_input:
        threads.append(threading.Thread(target=_rlm_inspect_feed, args=(job_id, job["chunks"], proc.stdin)))
    for thread in threads:
        thread.start()
    timed_out = False
    try:
        proc.wait(timeout=job["timeout"])
    except subprocess.TimeoutExpired:
        timed_out = True
    # Kill the command's whole session: children it left running would hold the pipes open.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()
    for thread in threads:
        thread.join(10)
    for stream in ("stdout", "stderr"):
        _rlm_inspect_send(job_id, stream, outs[stream].get("data", b""), job["chunk"])
    code = proc.returncode
    return {"returncode": 128 - code if code < 0 else code, "timed_out": timed_out,
            "over": outs["stdout"]["over"] or outs["stderr"]["over"]}


def _rlm_inspect_send(job_id, stream, data, chunk):
    """Hand ``data`` to the host in chunks: each call stays under the protocol's line cap."""
    for start in range(0, len(data), chunk):
        inspect_put(job_id, stream, base64.b64encode(data[start:start + chunk]).decode())  # noqa: F821 - a host callback


def _rlm_inspect_write(job_id, job):
    path = job["path"]
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(21, "Is a directory", path)
        parent = os.path.dirname(path)
        if parent:
            os.makedirs(parent, exist_ok=True)
        with open(path, "wb") as handle:
            for index in range(job["chunks"]):
                handle.write(base64.b64decode(inspect_chunk(job_id, index)))  # noqa: F821 - a host callback
    except OSError as exc:
        return _rlm_inspect_error(exc, path)
    return {}


def _rlm_inspect_read(job_id, job):
    path = job["path"]
    try:
        if os.path.isdir(path):
            raise IsADirectoryError(21, "Is a directory", path)
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if size > job["limit"]:
                return {"over": True, "size": size}
            while True:
                block = handle.read(job["chunk"])
                if not block:
                    break
                inspect_put(job_id, "file", base64.b64encode(block).decode())  # noqa: F821 - a host callback
    except OSError as exc:
        return _rlm_inspect_error(exc, path)
    return {}


def _rlm_inspect_run(job_id):
    job = inspect_job(job_id)  # noqa: F821 - a host callback
    handler = {"exec": _rlm_inspect_exec, "write": _rlm_inspect_write, "read": _rlm_inspect_read}[job["op"]]
    inspect_done(job_id, handler(job_id, job))  # noqa: F821 - a host callback
