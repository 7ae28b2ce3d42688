"""The behaviour every sandbox provider must share. Runs once per provider (docker, local)."""

from __future__ import annotations

import os
import threading
import time

import pytest

from rlm_sandbox.errors import (
    ContextTypeError,
    SandboxClosed,
    ValueNotSerializable,
    ValueTooLarge,
    VariableNotFound,
)
from rlm_sandbox.sandbox import Host
from tests.conftest import fast_limits


# -- state and context ------------------------------------------------------------------

def test_state_persists_across_cells(make_sandbox):
    sb = make_sandbox("abc")
    assert sb.exec("x = 40").ok
    assert sb.exec("def f(): return x + 2").ok
    assert sb.exec("print(f())").stdout == "42\n"


@pytest.mark.parametrize("context", [
    "plain text with ünïcödé and emoji \U0001F600\nand lines",
    b"\x00\x01binary\xff" * 100,
    ["first doc", "second doc", "ünïcödé"],
    {"employees": [{"name": "Ada", "salary": 100}], "n": 1, "ok": True, "none": None},
    [1, 2.5, [3, {"a": "b"}]],
    None,
    "",
])
def test_each_context_type_round_trips(make_sandbox, context):
    sb = make_sandbox(context)
    assert sb.exec(f"assert type(context).__name__ == {type(context).__name__!r}").ok
    if isinstance(context, bytes):
        assert sb.exec(f"assert context == {context!r}").ok
    else:
        assert sb.get("context") == context


def test_context_info_reports_type_and_length(make_sandbox):
    sb = make_sandbox(["a", "bb", "ccc"])
    assert sb.context_info == {"type": "list", "length": 3}


@pytest.mark.parametrize("bad", [object(), 3.5, {"k": object()}, {1, 2}])
def test_unsupported_context_is_refused_with_a_clear_error(make_sandbox, bad):
    with pytest.raises(ContextTypeError, match="context"):
        make_sandbox(bad)


# -- output -----------------------------------------------------------------------------

def test_stdout_and_stderr_are_captured_per_cell(make_sandbox):
    sb = make_sandbox()
    result = sb.exec("import sys\nprint('out')\nprint('err', file=sys.stderr)")
    assert (result.stdout, result.stderr) == ("out\n", "err\n")
    assert sb.exec("pass").stdout == ""


def test_last_expression_is_displayed_like_a_repl(make_sandbox):
    sb = make_sandbox("hello")
    assert sb.exec("context[:4]").stdout == "'hell'\n"
    assert sb.exec("x = 1\nNone").stdout == ""


def test_output_from_threads_fds_and_children_is_captured(make_sandbox):
    sb = make_sandbox()
    code = (
        "import os, sys, threading, subprocess\n"
        "t = threading.Thread(target=lambda: print('thread')); t.start(); t.join()\n"
        "os.write(1, b'fd1\\n'); os.write(2, b'fd2\\n')\n"
        "subprocess.run(['sh', '-c', 'echo child'])\n"
        "print('dunder', file=sys.__stdout__)\n"
    )
    result = sb.exec(code)
    assert result.ok, result.error
    for piece in ("thread\n", "fd1\n", "child\n", "dunder\n"):
        assert piece in result.stdout
    assert result.stderr == "fd2\n"


def test_replacing_sys_stdout_cannot_break_the_next_cell(make_sandbox):
    sb = make_sandbox()
    sb.exec("import sys, io\nsys.stdout = io.StringIO()\nsys.__stdout__ = None")
    assert sb.exec("print('still here')").stdout == "still here\n"


def test_output_flood_is_capped_keeping_head_and_tail(make_sandbox):
    # Printing 100,000 lines took over fast_limits' 2 s on a loaded machine (over stdio, on the
    # remote-Docker test's second daemon): this test is about the cap, so time is no limit here.
    sb = make_sandbox(limits=fast_limits(max_stream_chars=1000, cell_timeout_s=60))
    result = sb.exec("for i in range(100000): print(i)")
    assert result.stdout_truncated
    assert len(result.stdout) < 1200
    assert result.stdout.startswith("0\n1\n2\n")
    assert result.stdout.endswith("99999\n")
    assert "characters omitted" in result.stdout


# -- errors -----------------------------------------------------------------------------

def test_error_keeps_output_printed_before_it(make_sandbox):
    sb = make_sandbox()
    result = sb.exec("print('partial')\nx = 1\n1/0\nprint('never')")
    assert result.stdout == "partial\n"
    assert result.error.type == "ZeroDivisionError"
    assert result.error.message == "division by zero"
    assert result.error.lineno == 3
    assert "1/0" in result.error.traceback


def test_syntax_error_reports_its_line(make_sandbox):
    sb = make_sandbox()
    result = sb.exec("x = 1\ny = (2 +\n")
    assert result.error.type == "SyntaxError"
    assert result.error.lineno == 2


def test_traceback_shows_the_cell_not_the_kernel(make_sandbox):
    sb = make_sandbox()
    result = sb.exec("def inner():\n    raise ValueError('deep')\ninner()")
    assert result.error.type == "ValueError"
    assert "inner()" in result.error.traceback and "raise ValueError" in result.error.traceback
    assert "repl.py" not in result.error.traceback and "server.py" not in result.error.traceback


def test_interrupt_traceback_hides_the_kernel_signal_handler(make_sandbox):
    sb = make_sandbox(limits=fast_limits(cell_timeout_s=0.3))
    result = sb.exec("while True: pass")
    assert result.timed_out and "server.py" not in result.error.traceback


@pytest.mark.parametrize("code, kind", [
    ("import sys; sys.exit(3)", "SystemExit"),
    ("exit()", "SystemExit"),
    ("raise KeyboardInterrupt", "KeyboardInterrupt"),
    ("raise SystemExit('bye')", "SystemExit"),
])
def test_exit_and_interrupt_from_user_code_never_kill_the_kernel(make_sandbox, code, kind):
    sb = make_sandbox()
    sb.exec("keep = 7")
    result = sb.exec(code)
    assert result.error.type == kind
    assert not result.restarted
    assert sb.exec("print(keep)").stdout == "7\n"


def test_a_dying_kernel_is_replaced_and_the_model_is_told(make_sandbox):
    sb = make_sandbox("ctx")
    sb.exec("keep = 1")
    result = sb.exec("import os; os._exit(9)")
    assert result.restarted
    assert result.error.type == "KernelDied"
    assert "variables were lost" in result.error.message
    assert sb.exec("print(context)").stdout == "ctx\n"
    assert sb.exec("keep").error.type == "NameError"


# -- timeouts ---------------------------------------------------------------------------

@pytest.mark.parametrize("code", [
    "while True: pass",
    "import time; time.sleep(10**6)",
    "import re; re.match(r'(a+)+$', 'a' * 64 + 'b')",
])
def test_timeout_interrupts_the_cell_and_keeps_variables(make_sandbox, code):
    sb = make_sandbox(limits=fast_limits(cell_timeout_s=1.0, interrupt_grace_s=3.0))
    sb.exec("keep = 'kept'")
    started = time.monotonic()
    result = sb.exec("print('started')\n" + code)
    assert result.timed_out
    assert result.error.type == "CellTimeout"
    assert time.monotonic() - started < 8
    if result.restarted:  # a C-level loop that never checks for signals: kernel replaced
        assert "variables were lost" in result.error.message
    else:
        assert result.stdout == "started\n"
        assert sb.exec("print(keep)").stdout == "kept\n"
    assert sb.exec("print(1 + 1)").stdout == "2\n"


def test_cell_ignoring_the_interrupt_gets_its_kernel_replaced(make_sandbox):
    sb = make_sandbox("the context", limits=fast_limits(cell_timeout_s=0.5, interrupt_grace_s=0.5))
    sb.exec("keep = 1")
    result = sb.exec(
        "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass")
    assert result.timed_out and result.restarted
    assert result.error.type == "CellTimeout"
    assert "variables were lost" in result.error.message
    assert sb.exec("print(context)").stdout == "the context\n"
    assert sb.exec("keep").error.type == "NameError"


def test_cell_swallowing_the_interrupt_gets_its_kernel_replaced(make_sandbox):
    sb = make_sandbox(limits=fast_limits(cell_timeout_s=0.5, interrupt_grace_s=0.5))
    result = sb.exec("import signal\nsignal.signal(signal.SIGINT, lambda *args: None)\nwhile True: pass")
    assert result.restarted and result.timed_out


def test_explicit_timeout_overrides_the_limit(make_sandbox):
    sb = make_sandbox(limits=fast_limits(cell_timeout_s=30))
    result = sb.exec("import time; time.sleep(30)", timeout=0.3)
    assert result.timed_out


# -- get / reset ------------------------------------------------------------------------

def test_get_returns_json_values(make_sandbox):
    sb = make_sandbox()
    sb.exec("a = {'k': [1, 2.5, 'x', None, True]}\nb = 'text'")
    assert sb.get("a") == {"k": [1, 2.5, "x", None, True]}
    assert sb.get("b") == "text"


def test_get_errors_say_what_is_wrong(make_sandbox):
    sb = make_sandbox()
    sb.exec("big = 'x' * 5000\nobj = object()")
    with pytest.raises(VariableNotFound, match="missing"):
        sb.get("missing")
    with pytest.raises(ValueTooLarge, match="5002 bytes"):
        sb.get("big", max_bytes=1024)
    with pytest.raises(ValueNotSerializable, match="str\\(obj\\)"):
        sb.get("obj")
    assert sb.exec("print(1)").ok


def test_reset_clears_variables_but_keeps_context_and_helpers(make_sandbox):
    sb = make_sandbox("ctx", host=Host({"echo": lambda x: x}))
    sb.exec("x = 1\ncontext = 'clobbered'")
    sb.reset()
    assert sb.exec("x").error.type == "NameError"
    assert sb.exec("print(context, echo('y'))").stdout == "ctx y\n"


def test_closed_sandbox_refuses_work(make_sandbox):
    sb = make_sandbox()
    sb.close()
    sb.close()  # twice is fine
    with pytest.raises(SandboxClosed):
        sb.exec("1")


# -- callbacks to the host ---------------------------------------------------------------

def test_callbacks_return_values_into_the_cell(make_sandbox):
    seen = []

    def llm_query(prompt: str, model: str | None = None) -> str:
        """Ask a sub-model."""
        seen.append((prompt, model))
        return f"answer to {prompt}"

    sb = make_sandbox(host=Host({"llm_query": llm_query}))
    result = sb.exec("print(llm_query('q1', model='m'))\nprint(llm_query.__doc__)")
    assert result.stdout == "answer to q1\nAsk a sub-model.\n"
    assert seen == [("q1", "m")]


def test_callback_exception_is_raised_in_the_cell_by_name(make_sandbox):
    class BudgetExceeded(Exception):
        pass

    def spend() -> None:
        raise BudgetExceeded("max_sub_calls=3 reached (3 used)")

    sb = make_sandbox(host=Host({"spend": spend}, ("BudgetExceeded",)))
    result = sb.exec("try:\n    spend()\nexcept BudgetExceeded as e:\n    print('caught', e)")
    assert result.stdout == "caught max_sub_calls=3 reached (3 used)\n"
    uncaught = sb.exec("spend()")
    assert uncaught.error.type == "BudgetExceeded"


def test_callback_argument_and_result_must_be_json(make_sandbox):
    sb = make_sandbox(host=Host({"echo": lambda x: x, "bad": lambda: object()}))
    result = sb.exec("echo(object())")
    assert result.error.type == "TypeError" and "JSON-serialisable" in result.error.message
    result = sb.exec("bad()")
    assert result.error.type == "ValueNotSerializable"
    assert sb.exec("print(echo([1, {'a': 2}]))").stdout == "[1, {'a': 2}]\n"


def test_unknown_callback_name_from_the_kernel_is_refused(make_sandbox):
    sb = make_sandbox(host=Host({"echo": lambda x: x}))
    # Reach the kernel's call machinery the way hostile code could, and ask for a name
    # the host never offered.
    result = sb.exec(
        "calls = [c.cell_contents for c in echo.__closure__ if hasattr(c.cell_contents, 'call')][0]\n"
        "calls.call('os_system', ('rm -rf /',), {})")
    assert result.error.type == "UnknownCallback"
    assert "echo" in result.error.message


def test_callbacks_run_concurrently_from_threads(make_sandbox):
    active, peak, lock = [0], [0], threading.Lock()

    def slow(i: int) -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.3)
        with lock:
            active[0] -= 1
        return i * i

    sb = make_sandbox(host=Host({"slow": slow}))
    result = sb.exec(
        "from concurrent.futures import ThreadPoolExecutor\n"
        "with ThreadPoolExecutor(8) as pool:\n"
        "    print(list(pool.map(slow, range(8))))")
    assert result.stdout == "[0, 1, 4, 9, 16, 25, 36, 49]\n"
    assert peak[0] >= 4


def test_time_spent_in_callbacks_does_not_count_against_the_cell_timeout(make_sandbox):
    sb = make_sandbox(host=Host({"slow": lambda: time.sleep(0.4) or "done"}),
                      limits=fast_limits(cell_timeout_s=1.0))
    result = sb.exec("print([slow() for _ in range(5)])")
    assert not result.timed_out, result.error
    assert result.stdout.count("done") == 5


# -- FINAL ------------------------------------------------------------------------------

def test_final_and_final_var_are_reported(make_sandbox):
    sb = make_sandbox()
    assert sb.exec("FINAL('forty-two')").final.answer == "forty-two"
    result = sb.exec("total = {'sum': 42}\nFINAL_VAR('total')")
    assert (result.final.answer, result.final.source, result.final.name) == ('{"sum": 42}', "FINAL_VAR", "total")
    assert sb.exec("FINAL_VAR('nope')").error.type == "NameError"
    assert sb.exec("pass").final is None


# -- offloading and memory ----------------------------------------------------------------

def test_long_output_is_offloaded_and_can_be_read_back_in_pieces(make_sandbox):
    sb = make_sandbox()
    result = sb.exec("print('x' * 300 + 'y' * 700)", offload_threshold=500, preview_chars=50)
    assert result.offloaded is not None and result.offloaded.chars == 1001
    assert result.stdout == "x" * 50 and result.stdout_truncated
    name = result.offloaded.name
    piece = sb.exec(f"print({name}[290:310])", offload_threshold=500)
    assert piece.offloaded is None and piece.stdout == "x" * 10 + "y" * 10 + "\n"
    # Reading the whole result back shows it (clipped to the output cap), never re-offloads.
    whole = sb.exec(f"print({name})", offload_threshold=500)
    assert whole.offloaded is None and whole.stdout.count("y") == 700


def test_short_output_and_disabled_offloading_are_shown_whole(make_sandbox):
    sb = make_sandbox()
    assert sb.exec("print('a' * 100)", offload_threshold=500).offloaded is None
    assert sb.exec("print('a' * 1000)").stdout == "a" * 1000 + "\n"


def test_memory_status_lists_variables_and_forget_frees_them(make_sandbox):
    sb = make_sandbox("the context")
    first = sb.exec("print('z' * 2000)", offload_threshold=500).offloaded.name
    sb.exec("numbers = list(range(10))")
    status = sb.exec("memory_status()").stdout
    assert "context" in status and first in status and "numbers" in status and "len 10" in status
    assert "FINAL" not in status
    forgot = sb.exec(f"forget('{first}', 'numbers', 'context', 'llm_query_missing')").stdout
    assert f"forgot {first}, numbers" in forgot and "kept context" in forgot and "no such variable" in forgot
    assert sb.exec("print(context)").stdout == "the context\n"
    assert sb.exec("numbers").error.type == "NameError"


def test_final_var_given_a_value_instead_of_a_name_explains_the_mistake(make_sandbox):
    sb = make_sandbox()
    result = sb.exec("answer = 'The total is 42'\nFINAL_VAR(answer)")
    assert result.error.type == "NameError"
    assert "takes the NAME of a variable" in result.error.message and "FINAL(value)" in result.error.message


# -- what a caller can read about a sandbox ------------------------------------------------

def test_start_timings_closed_and_socket_dir_say_what_happened(make_sandbox, request):
    """The public read-only hooks (the benchmarks use them instead of private state):
    which start-up stages ran, whether the sandbox is closed, where its socket lives."""
    provider = request.node.callspec.params["make_sandbox"]
    sb = make_sandbox("x" * 1000)
    # "docker" leaves the transport at auto: stdio on a remote daemon (tests/test_remote_docker.py)
    stdio = provider.startswith("docker") and sb.resolved_transport() == "stdio"
    assert stdio == (provider == "docker_stdio") or os.environ.get("DOCKER_HOST", "").startswith(("tcp:", "ssh:"))
    expected = {"launch", "hello", "upload", "send_context"}
    if provider.startswith("docker"):
        expected.add("resolve_image")
    if not stdio:
        expected.add("accept")  # over stdio the container's boot is part of `hello`
    first = sb.start_timings
    assert set(first) == expected
    assert all(isinstance(v, float) and v >= 0 for v in first.values())
    with pytest.raises(TypeError):
        first["launch"] = 0.0  # type: ignore[index]  # read-only: the point of the test
    assert not sb.closed
    socket_dir = sb.socket_dir
    assert (socket_dir is None) == stdio
    if socket_dir is not None:
        assert socket_dir.is_dir()

    assert sb.exec("import os; os._exit(3)").restarted
    assert set(sb.start_timings) == expected  # the restart's own start, recorded afresh
    assert set(first) == expected  # a view taken before still shows the first start

    sb.close()
    assert sb.closed and sb.socket_dir is None
    if socket_dir is not None:
        assert not socket_dir.exists()
