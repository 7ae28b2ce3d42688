"""The sandbox image: tagged by the kernel's source, built on first use.

The tag names a hash of the kernel sources and the Dockerfile, so a container never runs
an older kernel than the host expects. The image is built locally, not pulled, because
many hosts reach no registry at all. The base is the official Python slim image when it is
present or can be pulled, and otherwise a Debian image that ``build-base.sh`` makes from
Debian packages alone.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Union

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from ..errors import ImageError
from .base import BuildProgress, ProgressCallback
from .client import docker_client

#: ``True``: progress lines on stderr; ``False``: silent; a callback: told of each step instead.
Progress = Union[bool, ProgressCallback]
_STEP = re.compile(r"^Step (\d+)/(\d+) :")

IMAGE_REPO = "rlm-sandbox"
OFFICIAL_BASE = "python:3.12-slim"
DEBIAN_BASE = "rlm-sandbox-base:bookworm"
KERNEL_HASH_LABEL = "org.rlm-sandbox.kernel-hash"

_PACKAGE_ROOT = Path(__file__).resolve().parent.parent
_LOCK_WAIT_S = 30 * 60  # a Debian base build on a slow mirror takes minutes, not this long
_BASE_BUILD_TIMEOUT_S = 30 * 60
_SETUP_HINT = "In a checkout of rlm-sandbox, `bash scripts/setup.sh` (as root) sets all of this up."


# --- where things are ---------------------------------------------------------------

def sandbox_image_dir() -> Path:
    """Return the directory holding the Dockerfile and build-base.sh.

    A wheel carries it as ``rlm_sandbox/_sandbox_image`` (pyproject force-includes it);
    a checkout or editable install has it at the repository's ``sandbox_image/``.
    """
    for candidate in (_PACKAGE_ROOT / "_sandbox_image", _PACKAGE_ROOT.parent / "sandbox_image"):
        if (candidate / "Dockerfile").is_file():
            return candidate
    raise ImageError(
        f"The sandbox image's Dockerfile is missing (looked in {_PACKAGE_ROOT / '_sandbox_image'} "
        f"and {_PACKAGE_ROOT.parent / 'sandbox_image'}). Reinstall rlm-sandbox "
        "(`pip install --force-reinstall rlm-sandbox`), or restore sandbox_image/ in your checkout."
    )


def kernel_dir() -> Path:
    """Return the kernel package's directory, which the image carries as ``rlm_kernel``."""
    return _PACKAGE_ROOT / "kernel"


def _kernel_files(root: Path) -> list[Path]:
    """The kernel's ``.py`` files in a stable order: exactly what is hashed and shipped."""
    files = [p for p in root.rglob("*.py") if "__pycache__" not in p.relative_to(root).parts]
    if not files:
        raise ImageError(
            f"No kernel sources (*.py) under {root}. Reinstall rlm-sandbox, or restore "
            "rlm_sandbox/kernel/ in your checkout."
        )
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


# --- names --------------------------------------------------------------------------

def kernel_hash(kernel_root: Path | None = None, dockerfile: Path | None = None) -> str:
    """Return 12 hex digits of sha256 over the kernel sources and the Dockerfile.

    Paths and contents are length-prefixed so no two different trees hash alike.
    ``kernel_root`` and ``dockerfile`` default to the installed ones; tests pass copies.
    """
    root = Path(kernel_root) if kernel_root is not None else kernel_dir()
    digest = hashlib.sha256()
    for path in _kernel_files(root):
        name = path.relative_to(root).as_posix().encode()
        data = path.read_bytes()
        digest.update(b"%d:%s%d:" % (len(name), name, len(data)) + data)
    data = Path(dockerfile or sandbox_image_dir() / "Dockerfile").read_bytes()
    digest.update(b"Dockerfile%d:" % len(data) + data)
    return digest.hexdigest()[:12]


def default_image_tag(base: str | None = None, *, kernel_root: Path | None = None) -> str:
    """Return the tag of the image for the current kernel.

    An explicit ``base`` adds a suffix, so images built on different bases never share a
    tag. The automatic bases (official slim or the Debian one) are equivalent for the
    kernel and share the plain tag.
    """
    return _tag_for(kernel_hash(kernel_root), base)


def _tag_for(khash: str, base: str | None) -> str:
    tag = f"{IMAGE_REPO}:kernel-{khash}"
    if base:
        tag += "-base-" + hashlib.sha256(base.encode()).hexdigest()[:8]
    return tag


# --- the entry point ----------------------------------------------------------------

def ensure_image(
    image: str | None = None,
    *,
    base: str | None = None,
    progress: Progress = True,
    client: docker.DockerClient | None = None,
) -> str:
    """Return an image name that is present on the daemon, building ours if it is missing.

    ``image``: a user's own image; it is only checked, never built or pulled, because
    pulling something the user named is their decision. ``base``: build our image on
    this base (for example one with numpy) instead of choosing one. Progress lines go to
    stderr unless ``progress=False`` or ``RLM_SANDBOX_QUIET=1``; a callable ``progress`` is
    told of each step (``BuildProgress``) instead, and nothing is printed.
    """
    client = client or docker_client()
    khash = kernel_hash()
    tag = _tag_for(khash, base)
    if image is not None and image != tag:
        if _exists(client, image):
            _check_has_kernel(client, image)
            return image
        raise ImageError(
            f"Image {image!r} is not present on the Docker daemon. Pull or build it first "
            f"(`docker pull {image}`), or leave the image unset to use rlm-sandbox's own, "
            "which is built automatically."
        )
    if not _exists(client, tag):
        with _build_lock(progress):
            if not _exists(client, tag):  # another process may have built it while we waited
                if base is not None:
                    _ensure_explicit_base(client, base, progress)
                chosen = base or ensure_base(client, progress=progress)
                build_image(tag, chosen, client=client, progress=progress, expect_hash=khash)
    return tag


def prune_stale_images(client: docker.DockerClient | None = None) -> list[str]:
    """Remove our kernel images built for other kernel versions; returns the tags removed.

    Images a container still uses are kept (the daemon refuses), and so is every tag of
    the current kernel, whatever its base.
    """
    client = client or docker_client()
    current = f"{IMAGE_REPO}:kernel-{kernel_hash()}"
    removed = []
    for image in client.api.images(name=IMAGE_REPO):
        for tag in image.get("RepoTags") or []:
            if not tag.startswith(f"{IMAGE_REPO}:kernel-") or tag.startswith(current):
                continue
            try:
                client.api.remove_image(tag)
            except APIError:
                continue  # in use, or already gone
            removed.append(tag)
    return removed


# --- the pieces ---------------------------------------------------------------------

def build_image(
    tag: str,
    base: str,
    *,
    client: docker.DockerClient | None = None,
    kernel_root: Path | None = None,
    progress: Progress = True,
    expect_hash: str | None = None,
) -> str:
    """Build the sandbox image ``tag`` on ``base`` (which must be present) and return it.

    The context holds only the Dockerfile and a snapshot of the kernel files, and the
    label is the hash of that snapshot, so the image holds exactly what it claims and
    nothing else from the host. ``expect_hash`` guards against sources edited after the
    caller named the tag (in a checkout, during a long base build).
    """
    client = client or docker_client()
    root = Path(kernel_root) if kernel_root is not None else kernel_dir()
    _say(progress, f"building sandbox image {tag} on {base} (once per kernel version; about a minute "
                   "unless Docker has the layers cached) ...", image=tag)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rlm-sandbox-build-") as context:
        khash = _assemble_context(Path(context), root)
        if expect_hash is not None and khash != expect_hash:
            raise ImageError(
                f"The kernel sources in {root} changed while {tag} was being prepared; "
                "run again to build the image for the new sources."
            )
        log = _build(client, context, tag, base, khash, progress)
    if any("Running in " in line for line in log):
        _say(progress, f"built {tag} in {time.monotonic() - started:.0f} s", image=tag, done=True)
    else:  # no step ran: every layer came from Docker's build cache
        _say(progress, f"tagged {tag}: every layer was already in Docker's build cache", image=tag, done=True)
    return tag


def ensure_base(client: docker.DockerClient | None = None, *, progress: Progress = True) -> str:
    """Return a present base image, pulling or building one when none is.

    Order: the official slim image, the Debian base, a pull of the official image, a
    build of the Debian base. Each is tried only when the ones before are unavailable.
    """
    client = client or docker_client()
    for name in (OFFICIAL_BASE, DEBIAN_BASE):
        if _exists(client, name):
            return name
    pull_error = _pull(client, OFFICIAL_BASE)
    if pull_error is None:
        return OFFICIAL_BASE
    blocker = _debian_base_blocker()
    if blocker:
        raise ImageError(
            f"No base image for the sandbox: {OFFICIAL_BASE} is not present and could not be "
            f"pulled ({pull_error}), and {DEBIAN_BASE} is not present. Either "
            f"`docker pull {OFFICIAL_BASE}` where a registry is reachable, or build the base "
            f"from Debian packages: {blocker} {_SETUP_HINT}"
        )
    _say(progress, f"cannot pull {OFFICIAL_BASE}; building {DEBIAN_BASE} from Debian packages instead")
    return build_debian_base(progress=progress)


def build_debian_base(
    tag: str = DEBIAN_BASE, *, rootfs: Path | None = None, progress: Progress = True
) -> str:
    """Build a bookworm + python3 base with ``build-base.sh`` and return its tag.

    This is the way to a base with no registry at all; it needs root, debootstrap, the
    docker command and a Debian mirror. The script's output is kept for the error message.
    """
    blocker = _debian_base_blocker()
    if blocker:
        raise ImageError(f"Cannot build {tag} from Debian packages: {blocker} {_SETUP_HINT}")
    script = sandbox_image_dir() / "build-base.sh"
    _say(progress, f"building base image {tag} from Debian packages ... (one-time, ~1 min)")
    started = time.monotonic()
    proc = subprocess.Popen(
        ["bash", str(script), str(rootfs or ""), tag],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so a timeout can stop debootstrap too, not just bash
    )
    try:
        output, _ = proc.communicate(timeout=_BASE_BUILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        _stop_group(proc)
        raise ImageError(
            f"Building {tag} took over {_BASE_BUILD_TIMEOUT_S // 60} min and was stopped; "
            f"check the Debian mirror is reachable, then run `bash {script}` to see its output."
        ) from None
    if proc.returncode != 0:
        raise ImageError(f"Building {tag} failed (`bash {script}`):\n{output[-3000:]}")
    _say(progress, f"built {tag} in {time.monotonic() - started:.0f} s")
    return tag


# --- helpers ------------------------------------------------------------------------

def _build(client: docker.DockerClient, context: str, tag: str, base: str, khash: str,
           progress: Progress) -> list[str]:
    """Run the build, streaming Docker's output so each "Step k/n" is reported as it starts;
    returns the output's lines. A failed step raises ImageError with the end of the log.

    The build's RUN step needs no network (it compiles the kernel copied in), so it runs with
    none: no download can slip into the image, and a daemon whose bridge network is broken
    still builds it."""
    lines: list[str] = []
    try:
        for chunk in client.api.build(path=context, tag=tag, buildargs={"BASE": base, "KERNEL_HASH": khash},
                                      pull=False, rm=True, forcerm=True, decode=True, network_mode="none"):
            if "error" in chunk:
                raise ImageError(
                    f"Building {tag} on {base} failed: {str(chunk['error']).strip()}\n"
                    f"{''.join(lines)[-2000:]}\n"
                    "The base needs python3 >= 3.11 on its PATH and /bin/sh; pick another base "
                    "or fix that one.")
            line = str(chunk.get("stream") or "")
            lines.append(line)
            step = _STEP.match(line)
            if step:
                _say(progress, f"building the sandbox image {tag}, step {step[1]}/{step[2]}: "
                               f"{line.split(':', 1)[1].strip()[:80]}",
                     image=tag, step=int(step[1]), steps=int(step[2]), line=False)
    except APIError as exc:
        raise ImageError(f"Docker refused to build {tag} on {base}: {exc}") from exc
    return lines


def _assemble_context(context: Path, kernel_root: Path) -> str:
    """Copy the Dockerfile and kernel files (as ``rlm_kernel/``) into ``context``.

    Returns the hash of the copies, which is what the image will really contain.
    """
    shutil.copyfile(sandbox_image_dir() / "Dockerfile", context / "Dockerfile")
    for path in _kernel_files(kernel_root):
        target = context / "rlm_kernel" / path.relative_to(kernel_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return kernel_hash(context / "rlm_kernel", context / "Dockerfile")


def _exists(client: docker.DockerClient, name: str) -> bool:
    try:
        client.images.get(name)
    except ImageNotFound:
        return False
    except APIError as exc:
        raise ImageError(f"Docker could not look up image {name!r}: {exc}") from exc
    return True


def _check_has_kernel(client: docker.DockerClient, image: str) -> None:
    """Refuse an image that does not hold our kernel (its container would run the image's
    own command and exit, which says nothing useful), naming the command that makes one."""
    try:
        labels = (client.api.inspect_image(image).get("Config") or {}).get("Labels") or {}
    except APIError as exc:
        raise ImageError(f"Docker could not inspect image {image!r}: {exc}") from exc
    if KERNEL_HASH_LABEL not in labels:
        raise ImageError(
            f"Image {image!r} does not hold the rlm-sandbox kernel (it has no {KERNEL_HASH_LABEL} "
            f"label). Build the sandbox image on top of it with `rlm-sandbox image build --base {image}` "
            "(or ensure_image(base=...)) and use the tag that prints."
        )


def _pull(client: docker.DockerClient, name: str) -> str | None:
    """Pull ``name``; return None on success, else why it failed (no registry is common)."""
    try:
        client.images.pull(name)
    except DockerException as exc:
        return getattr(exc, "explanation", None) or str(exc)
    return None


def _ensure_explicit_base(client: docker.DockerClient, base: str, progress: Progress) -> None:
    if _exists(client, base):
        return
    _say(progress, f"base image {base} is not present; trying to pull it")
    error = _pull(client, base)
    if error is not None:
        raise ImageError(
            f"Base image {base!r} is not present and could not be pulled ({error}). Pull or "
            f"build it first (`docker pull {base}`), or leave base unset to let rlm-sandbox choose."
        )


def _debian_base_blocker() -> str:
    """Return what stops ``build-base.sh`` from running here, or "" when nothing does."""
    if os.geteuid() != 0:
        return f"that needs root: run `sudo bash {sandbox_image_dir() / 'build-base.sh'}` once."
    if not shutil.which("debootstrap", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
        return "install debootstrap (`apt-get install -y debootstrap`) and try again."
    if not shutil.which("docker"):
        return "install the docker command (`apt-get install -y docker.io`) and try again."
    return ""


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """Stop a process group politely (the script unmounts on TERM), then for sure."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


@contextlib.contextmanager
def _build_lock(progress: Progress) -> Iterator[None]:
    """Hold an exclusive file lock so concurrent processes build the image only once.

    The kernel frees an flock when its holder dies, so a crash never leaves it stuck; the
    wait is still bounded so nothing hangs forever.
    """
    path = Path(tempfile.gettempdir()) / f"rlm-sandbox-image-{os.getuid()}.lock"
    with open(path, "a") as handle:
        deadline = time.monotonic() + _LOCK_WAIT_S
        told = False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ImageError(
                        f"Waited {_LOCK_WAIT_S // 60} min for another process building the "
                        f"sandbox image (lock {path}); stop that process and try again."
                    ) from None
                if not told:
                    _say(progress, "another process is building the sandbox image; waiting")
                    told = True
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _say(progress: Progress, message: str, *, image: str | None = None, step: int | None = None,
         steps: int | None = None, done: bool = False, line: bool = True) -> None:
    """Tell ``progress`` (a callback) of a step, or print ``message`` on stderr (``line``
    False: only callbacks hear it, e.g. every build step)."""
    if callable(progress):
        progress(BuildProgress(message=message, image=image, step=step, steps=steps, done=done))
    elif line and progress and os.environ.get("RLM_SANDBOX_QUIET", "").lower() not in ("1", "true", "yes"):
        print(f"rlm-sandbox: {message}", file=sys.stderr, flush=True)
