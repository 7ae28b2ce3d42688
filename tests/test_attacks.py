"""More hostile code, under runc and gVisor: the attacks issue 13 lists that
tests/test_security.py did not have yet (its helpers, runtime fixture and WeakenedSandbox
controls are reused, so every attack here also runs once per runtime and is counted).

Each attack asserts containment AND that the sandbox carries on afterwards (its variables
kept, or the context reloaded after a restart). Attacks through the real loop (a scripted
model writing the code, a child RLM) are at the end.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import uuid
from typing import Any, Iterator

import pytest

from rlm_sandbox.testing import ScriptedModel
from tests.conftest import fast_limits
from tests.host_network import bridge_gateway, free_subnet, host_addresses, interface_gateway
from tests.rlm_helpers import feedback, make_rlm
from tests.test_security import (  # noqa: F401 - fixtures are used by name
    CTX, HostGrowth, _drop, _set, assert_still_works, attack, make_docker_sandbox,
    make_weakened, runtime,
)

pytestmark = pytest.mark.docker

NO_GVISOR_NETWORK = ("runsc is registered with --network=none (scripts/setup.sh): gVisor gives the sandbox "
                     "no network even on a Docker bridge, so removing network_mode=none removes no defence")


# == host secrets: files and the Docker socket ============================================

SECRET_FILES_ATTACK = r'''
import json, os, socket
out = {"sockets": [], "connected": []}
for top in ("/run", "/var/run", "/tmp", "/home", "/root", "/etc", "/mnt", "/srv"):
    for root, dirs, files in os.walk(top):
        for name in files + dirs:
            path = os.path.join(root, name)
            try:
                if os.path.exists(path) and __import__("stat").S_ISSOCK(os.stat(path).st_mode):
                    out["sockets"].append(path)
            except OSError:
                pass
for path in out["sockets"]:
    client = socket.socket(socket.AF_UNIX)
    client.settimeout(3)
    try:
        client.connect(path)
        client.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
        out["connected"].append([path, client.recv(200).decode("latin-1")])
    except OSError as exc:
        pass
    client.close()
for path in ("/etc/shadow", "/root/.docker/config.json", "/proc/1/root/etc/shadow"):
    try:
        out[path] = open(path).read()[:50]
    except OSError as exc:
        out[path] = type(exc).__name__
out["run_rlm"] = sorted(os.listdir("/run/rlm")) if os.path.isdir("/run/rlm") else None
print("RESULT:" + json.dumps(out))
'''


def test_host_files_and_the_docker_socket_are_out_of_reach(make_docker_sandbox):
    """Reading host secrets from files: the cell hunts every Unix socket under the usual
    directories (a Docker socket would give it the host) and talks HTTP to each, and reads
    root-only files. No socket is found (the host's own socket file is deleted once the
    kernel connected; the mount is read-only), root-only files are refused."""
    sb = make_docker_sandbox(CTX)
    out = attack(sb, SECRET_FILES_ATTACK, timeout=60)
    assert out["connected"] == [] and out["sockets"] == [], out
    assert out["run_rlm"] in ([], None), out
    for path in ("/etc/shadow", "/root/.docker/config.json", "/proc/1/root/etc/shadow"):
        assert out[path] in ("PermissionError", "FileNotFoundError"), (path, out[path])
    assert_still_works(sb)


def test_control_a_mounted_docker_socket_is_found_and_answers(make_weakened):
    """Control: mount the host's Docker socket, readable by the sandbox user's groups (what
    the sandbox never does), and the same hunt finds it and Docker answers its ping."""
    import os

    def mount_socket(config: dict[str, Any]) -> None:
        config["Binds"] = [*(config.get("Binds") or []), "/var/run/docker.sock:/var/run/docker.sock"]
        config["GroupAdd"] = [str(os.stat("/var/run/docker.sock").st_gid)]

    sb = make_weakened(host=mount_socket)
    out = attack(sb, SECRET_FILES_ATTACK, timeout=60)
    assert "/var/run/docker.sock" in out["sockets"], out
    assert any(answer.startswith("HTTP/1.0 200 OK") for path, answer in out["connected"]), out


# == every kind of egress =================================================================

@pytest.fixture
def host_listener() -> Iterator[int]:
    """A TCP server on every host address (0.0.0.0), answering "pong"; yields its port."""
    server = socket.create_server(("0.0.0.0", 0))
    server.settimeout(0.5)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                client, _ = server.accept()
            except OSError:
                continue
            with client:
                client.sendall(b"pong")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(5)
    server.close()


EGRESS_ATTACK = r'''
import json, os, socket
out = {}
def attempt(name, family, kind, address, payload=None):
    probe = socket.socket(family, kind)
    probe.settimeout(3)
    try:
        if kind == socket.SOCK_DGRAM:
            probe.sendto(payload, address)
            out[name] = "sent:" + repr(probe.recvfrom(512)[0][:20])
        else:
            probe.connect(address)
            out[name] = "connected:" + probe.recv(16).decode("latin-1")
    except OSError as exc:
        out[name] = "OSError"
    finally:
        probe.close()
for address in HOST_ADDRESSES:
    attempt("tcp " + address, socket.AF_INET, socket.SOCK_STREAM, (address, PORT))
attempt("udp dns 8.8.8.8", socket.AF_INET, socket.SOCK_DGRAM, ("8.8.8.8", 53),
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x07example\x03com\x00\x00\x01\x00\x01")
attempt("tcp 1.1.1.1:80", socket.AF_INET, socket.SOCK_STREAM, ("1.1.1.1", 80))
attempt("tcp6 google dns", socket.AF_INET6, socket.SOCK_STREAM, ("2001:4860:4860::8888", 53))
attempt("tcp6 host mapped", socket.AF_INET6, socket.SOCK_STREAM, ("::ffff:" + HOST_ADDRESSES[0], PORT))
try:
    socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
    out["raw"] = "opened"
except OSError as exc:
    out["raw"] = "OSError"
try:
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW).close()
    out["packet"] = "opened"
except (OSError, AttributeError):
    out["packet"] = "OSError"
out["interfaces"] = sorted(n for _, n in socket.if_nameindex())
print("RESULT:" + json.dumps(out))
'''


def test_no_egress_of_any_kind(make_docker_sandbox, docker_client, host_listener):
    """Every way out: TCP to the bridge gateway and to each host address where a server
    listens on all interfaces, UDP to a public DNS server, TCP to the Internet, IPv6 (a
    public address and the host mapped into IPv6), raw and packet sockets. All fail; the
    only interface is lo. (Unix sockets in the mount: test_host_files_and_the_docker_socket...)"""
    sb = make_docker_sandbox(CTX)
    out = attack(sb, EGRESS_ATTACK, timeout=90, HOST_ADDRESSES=host_addresses(docker_client), PORT=host_listener)
    assert out.pop("interfaces") == ["lo"], out
    assert set(out.values()) == {"OSError"}, out
    assert_still_works(sb)


def test_a_gateway_the_daemon_does_not_report_is_found_where_containers_see_it(docker_client, sandbox_image):
    """A freshly started Docker 20.10 daemon reports the default bridge's IPAM config with
    ``Subnet`` only (no ``Gateway``), as it does for any network made with ``--subnet`` alone;
    the egress attack used to die there with KeyError: 'Gateway'. On such a network the
    gateway found is the one a container on it is given, and it is among the addresses the
    attack tries (so the attack still tries every real host address)."""
    from docker.types import IPAMConfig, IPAMPool

    from tests.conftest import TEST_SESSION, TEST_SESSION_LABEL

    subnet = free_subnet(("198.18.215.0/24", "10.215.77.0/24", "172.31.215.0/24"))
    network = docker_client.networks.create(f"rlm-test-subnet-only-{uuid.uuid4().hex[:8]}", driver="bridge",
                                            ipam=IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet))]))
    try:
        info = docker_client.api.inspect_network(network.id)
        container = docker_client.containers.run(
            sandbox_image, ["python3", "-c", "import time; time.sleep(120)"], detach=True, network=network.name,
            labels={TEST_SESSION_LABEL: TEST_SESSION})
        try:
            container.reload()
            seen_inside = container.attrs["NetworkSettings"]["Networks"][network.name]["Gateway"]
        finally:
            container.remove(force=True)
        assert seen_inside and ipaddress.ip_address(seen_inside) in subnet
        assert interface_gateway(info) == seen_inside  # what a Subnet-only config leaves to find
        assert bridge_gateway(docker_client, network.name) == seen_inside
        assert seen_inside in host_addresses(docker_client, network.name)
    finally:
        network.remove()


def test_control_on_a_bridge_the_host_listener_answers(make_weakened, docker_client, host_listener, runtime):
    """Control: on a Docker bridge the same cell reaches the host's server through the
    gateway, so the test above would see a sandbox with a network."""
    if runtime == "runsc":
        pytest.skip(NO_GVISOR_NETWORK)
    sb = make_weakened(host=_set("NetworkMode", "bridge"),
                       container=lambda kwargs: kwargs.__setitem__("network_disabled", False))
    out = attack(sb, EGRESS_ATTACK, timeout=90, HOST_ADDRESSES=host_addresses(docker_client), PORT=host_listener)
    seen_inside = docker_client.api.inspect_container(sb.container_id)["NetworkSettings"]["Gateway"]
    assert bridge_gateway(docker_client) == seen_inside  # the gateway the attack tried is the real one
    assert out["tcp " + seen_inside] == "connected:pong", out


# == thread bomb ==========================================================================

THREAD_BOMB = r'''
import json, threading, time
stop = threading.Event()
threads, error = [], None
try:
    while len(threads) < MAX_THREADS:
        thread = threading.Thread(target=stop.wait, daemon=True)
        thread.start()
        threads.append(thread)
except RuntimeError as exc:
    error = str(exc)
stop.set()
for thread in threads:
    thread.join()
print("RESULT:" + json.dumps({"threads": len(threads), "error": error}))
'''


def test_thread_bomb_is_stopped_by_the_pids_limit(make_docker_sandbox):
    """Threads count as tasks: a cell starting threads until it fails gets "can't start new
    thread" below pids=64 (runc: the pids cgroup; gVisor: RLIMIT_NPROC in its own kernel),
    and keeps its variables."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(pids=64, cell_timeout_s=30))
    assert sb.exec("kept = 41").ok
    out = attack(sb, THREAD_BOMB, MAX_THREADS=300)
    assert out["error"] and "thread" in out["error"] and out["threads"] < 64, out
    assert sb.exec("print(kept + 1)").stdout == "42\n"


def test_control_thread_bomb_without_pids_limits_reaches_its_cap(make_weakened):
    """Control: without PidsLimit (and, under gVisor, the nproc ulimit) all 300 start."""
    sb = make_weakened(limits=fast_limits(pids=64, cell_timeout_s=60), host=_drop("PidsLimit", "Ulimits"))
    out = attack(sb, THREAD_BOMB, MAX_THREADS=300)
    assert (out["threads"], out["error"]) == (300, None), out


# == output: 1 GB, and printing after the cell ended =======================================

def test_a_gigabyte_print_is_capped_and_the_host_does_not_grow(make_docker_sandbox):
    """One cell prints 1 GB (a thousand 1 MB writes): the result holds at most the output
    cap, the host process does not grow, the sandbox answers with its variables."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(cell_timeout_s=120))
    assert sb.exec("kept = 41").ok
    growth = HostGrowth()
    result = sb.exec("import sys\nchunk = 'x' * 10**6\nfor _ in range(1000):\n    sys.stdout.write(chunk)\n"
                     "print('done')")
    assert result.error is None, result.error
    assert len(result.stdout) <= sb.limits.max_stream_chars + 200 and "omitted" in result.stdout
    assert growth.mib() < 100
    assert sb.exec("print(kept + 1)").stdout == "42\n"


def test_printing_forever_after_the_cell_ended_stays_capped(make_docker_sandbox):
    """A cell leaves a thread printing forever: later cells still complete, each result is
    capped, the host does not grow and variables survive."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(cell_timeout_s=30))
    started = sb.exec("import threading, time\ndef spam():\n    while True:\n        print('z' * 1000)\n"
                      "threading.Thread(target=spam, daemon=True).start()\nkept = 41")
    assert started.error is None, started.error
    growth = HostGrowth()
    for _ in range(3):
        result = sb.exec("time.sleep(1)\nprint('mine', kept + 1)")
        assert result.error is None, result.error
        assert len(result.stdout) <= sb.limits.max_stream_chars + 200
    assert growth.mib() < 100
    assert "42" in sb.exec("print('mine', kept + 1)").stdout


# == the kernel harming itself ============================================================

SELF_HARM = {
    "sigkill_itself": "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)",
    "os_exit": "import os\nos._exit(3)",
    "segfault_through_ctypes": "import ctypes\nctypes.string_at(0)",
    "close_the_protocol_socket": ("import gc, socket\nfor s in [o for o in gc.get_objects() "
                                  "if isinstance(o, socket.socket)]:\n    s.shutdown(socket.SHUT_RDWR)\n    s.close()"),
    "close_every_fd": "import os\nos.closerange(0, 1024)\nimport time\ntime.sleep(2)",
    "kill_init": "import os, signal\nos.kill(1, signal.SIGKILL)\nimport time\ntime.sleep(2)",
    "deep_recursion_raised_limit": "import sys\nsys.setrecursionlimit(10**7)\ndef f(n):\n    return f(n + 1)\nf(0)",
}


@pytest.mark.parametrize("harm", sorted(SELF_HARM))
def test_a_kernel_harming_itself_is_replaced_and_the_sandbox_carries_on(make_docker_sandbox, harm):
    """Killing its own kernel (SIGKILL, os._exit, a segfault through ctypes, closing the
    protocol socket or every descriptor, killing init, recursing past the C stack): the cell
    ends in bounded time with an error (or, where the harm is refused - runc's init ignores
    signals from inside - normally), and the next cell runs with the context reloaded."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(cell_timeout_s=5, interrupt_grace_s=1))
    result = sb.exec(SELF_HARM[harm])
    if result.error is not None:
        assert result.error.type in ("KernelDied", "CellTimeout", "RecursionError", "MemoryError"), result.error
        assert result.error.message
    after = sb.exec("print(context)")
    if after.error is not None:  # the harm surfaced only now (init killed after the cell ended)
        assert after.error.type == "KernelDied" and after.restarted, after.error
        after = sb.exec("print(context)")
    assert (after.error, after.stdout) == (None, CTX + "\n")


def test_default_recursion_limit_keeps_the_variables(make_docker_sandbox):
    sb = make_docker_sandbox(CTX)
    assert sb.exec("kept = 41").ok
    result = sb.exec("def f(n):\n    return f(n + 1)\nf(0)")
    assert result.error is not None and result.error.type == "RecursionError" and not result.restarted
    assert sb.exec("print(kept + 1)").stdout == "42\n"


# == mount, ptrace, unshare, keyctl =======================================================

SYSCALL_ATTACK = r'''
import ctypes, errno, json, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
out = {}
def attempt(name, call):
    ctypes.set_errno(0)
    value = call()
    out[name] = "succeeded" if value >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
attempt("unshare_user", lambda: libc.unshare(0x10000000))
attempt("unshare_mount", lambda: libc.unshare(0x00020000))
attempt("mount", lambda: libc.mount(b"none", b"/tmp", b"tmpfs", 0, None))
attempt("mount_proc", lambda: libc.mount(b"proc", b"/tmp", b"proc", 0, None))
attempt("keyctl_add_key", lambda: libc.syscall(248, b"user", b"k", b"v", 1, ctypes.c_int(-2)))
attempt("ptrace_traceme", lambda: libc.ptrace(0, 0, None, None))
out["pids"] = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
out["caps"] = open("/proc/self/status").read().split("CapEff:")[1].split()[0]
print("RESULT:" + json.dumps(out))
'''


def test_mount_unshare_keyctl_and_ptrace_reach_nothing(make_docker_sandbox):
    """setuid/capabilities are in test_security.py; here mount (twice, after trying to
    unshare into new user and mount namespaces), keyctl and ptrace. Mounts and new user
    namespaces are refused and keyrings are out of reach (runc: EPERM from the seccomp
    profile and the empty capability set; gVisor: its own kernel refuses or lacks them). A
    mount namespace gVisor may grant holds no capability. ptrace can only reach the
    sandbox's own few processes: no host process is visible to trace."""
    sb = make_docker_sandbox(CTX)
    out = attack(sb, SYSCALL_ATTACK)
    assert out["unshare_user"] != "succeeded" and out["mount"] != "succeeded", out
    assert out["mount_proc"] != "succeeded" and out["keyctl_add_key"] != "succeeded", out
    assert out["caps"] == "0000000000000000", out
    assert len(out["pids"]) <= 4, out  # init, the kernel, (+ a moment's helper)
    assert_still_works(sb)


def test_control_without_seccomp_keyctl_succeeds(make_weakened, runtime):
    """Control (runc): with seccomp=unconfined the same cell adds a key to its keyring, so
    the test above detects the loss of Docker's seccomp profile."""
    if runtime == "runsc":
        pytest.skip("gVisor implements no keyrings: add_key fails whatever the seccomp profile")
    sb = make_weakened(host=lambda config: config.__setitem__(
        "SecurityOpt", [*config.get("SecurityOpt", []), "seccomp=unconfined"]))
    out = attack(sb, SYSCALL_ATTACK)
    assert out["keyctl_add_key"] == "succeeded", out


# == through the real loop: a hostile model, and a hostile child RLM ==========================

@pytest.fixture
def runtime_factory(sandbox_factory: Any, runtime: str) -> Any:
    """conftest's RLM sandbox factory with this test's runtime."""
    def factory(spec: Any, context: Any, host: Any) -> Any:
        return sandbox_factory(spec.model_copy(update={"runtime": runtime}), context, host)

    return factory


def _repl(code: str) -> str:
    return f"```repl\n{code}\n```"


HOSTILE_CALLBACKS = _repl("""\
import os
tries = {}
for name, call in [
    ("object", lambda: llm_query(object())),
    ("bytes", lambda: llm_query(b"\\xff\\xfe")),
    ("set", lambda: llm_query({1, 2})),
    ("nan_kwarg", lambda: llm_query("x", model=float("nan"))),
    ("huge_args", lambda: llm_query("x" * (50 << 20))),
    ("raise_depth", lambda: rlm_query("q", max_depth=99)),
    ("raise_budget", lambda: llm_query("x", max_cost_usd=1e9)),
]:
    try:
        tries[name] = "returned " + repr(call())[:40]
    except Exception as exc:
        tries[name] = type(exc).__name__
os.environ["RLM_MAX_DEPTH"] = "99"
os.environ["RLM_SANDBOX_MAX_DEPTH"] = "99"
status = budget_status()
status["depth"]["limit"] = 99
import json
print("tries", json.dumps(tries))
print("depth after", budget_status()["depth"])
""")


def test_hostile_callbacks_cannot_raise_budget_or_depth(runtime_factory):
    """Non-JSON arguments, a 50 MB argument, keyword arguments that would raise the depth or
    the budget, and environment variables / the status dict that name them: each call is
    refused with an error in the cell, the limits the host holds are unchanged, no sub-call
    is made, and the run carries on to its answer."""
    root = ScriptedModel([HOSTILE_CALLBACKS, "FINAL(done)"])
    sub = ScriptedModel(["never asked"])
    rlm = make_rlm(runtime_factory, root, sub, max_depth=1, max_sub_calls=5)
    result = rlm.run("q", "ctx")
    seen = feedback(root, 1)
    tries = json.loads(seen.split("tries ", 1)[1].split("\n", 1)[0])
    assert not any(outcome.startswith("returned") for outcome in tries.values()), tries
    assert "'limit': 1" in seen.split("depth after", 1)[1], seen
    assert sub.calls == []
    assert (result.status, result.answer) == ("completed", "done")


@pytest.mark.parametrize("final", ["FINAL_VAR(big)", _repl("FINAL_VAR('big')")], ids=["in_text", "in_code"])
def test_a_huge_final_var_is_not_passed_off_as_the_whole_answer(runtime_factory, final):
    """FINAL_VAR of a 300 MB string (named in the reply's text, or called in code): the host
    does not take it whole (the host stays bounded), and the clipped text is not passed off as
    the complete, final answer: the model is told and asked again."""
    root = ScriptedModel([_repl("big = 'x' * (300 << 20)"), final, "FINAL(small)"])
    growth = HostGrowth()
    result = make_rlm(runtime_factory, root, memory="2g").run("q", "ctx")
    assert growth.mib() < 150
    assert not result.answer.startswith("x" * 1000), (result.status, len(result.answer))  # not the clipped text
    rejected = [e for e in result.trajectory if e.event == "final_rejected"]
    assert [e.reason for e in rejected] == ["too_long"] and "not accepted" in rejected[0].problem
    assert (result.status, result.answer) == ("completed", "small")  # told, the model answered again


CHILD_ATTACKS = _repl("""\
import glob, os, socket
found = [k for k, v in os.environ.items() if 'sk-' in v]
for path in glob.glob('/proc/*/environ'):
    try:
        found += [path] if b'sk-host' in open(path, 'rb').read() else []
    except OSError:
        pass
print('child secrets:', found, 'interfaces:', [n for _, n in socket.if_nameindex()])
print('child depth:', budget_status()['depth'])
try:
    print('grandchild:', rlm_query('go deeper', 'x'))
except Exception as exc:
    print('grandchild refused:', type(exc).__name__)
""")
CHILD_KILLS_ITSELF = _repl("import os\nos.kill(os.getpid(), 9)")


def test_a_hostile_child_rlm_is_contained_like_the_root(runtime_factory, monkeypatch):
    """The same from inside a child RLM (rlm_query): the child's code finds no secret and
    no network, cannot go past the depth limit (at the limit rlm_query is a plain sub-call,
    counted), kills its own kernel - and the child still answers, the root carries on."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-host-secret-0123456789abcdef")
    root = ScriptedModel([_repl("print('child said:', rlm_query('attack', 'child context'))"), "FINAL(root done)"])
    # The child's model also answers its sub-calls: its second reply is the grandchild's.
    child = ScriptedModel([CHILD_ATTACKS, "plain answer", CHILD_KILLS_ITSELF, _repl("print(context)"),
                           "FINAL(child done)"])
    result = make_rlm(runtime_factory, root, child, max_depth=1, max_sub_calls=10).run("q", "ctx")
    child_saw = [feedback(child, turn) for turn in (2, 3, 4)]
    assert "child secrets: [] interfaces: ['lo']" in child_saw[0], child_saw[0]
    assert "'used': 1, 'limit': 1" in child_saw[0], child_saw[0]
    assert "grandchild: plain answer" in child_saw[0], child_saw[0]  # a plain llm_query, no deeper
    assert "KernelDied" in child_saw[1], child_saw[1]
    assert "child context" in child_saw[2]  # reloaded after the kill
    assert "child said: child done" in feedback(root, 1)
    assert (result.status, result.answer) == ("completed", "root done")
