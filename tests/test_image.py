"""The sandbox image: tags that follow the kernel, a working image, and the files a wheel ships.

Docker tests use the real daemon through conftest's ``docker_client`` fixture, which fails
them when none answers (skips only with RLM_SANDBOX_ALLOW_SKIP_DOCKER=1).
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import uuid
import zipfile
from pathlib import Path

import docker
import pytest

from rlm_sandbox.errors import ImageError
from rlm_sandbox.sandbox import image as image_mod

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def fake_kernel(tmp_path: Path) -> Path:
    """A tiny stand-in kernel package: stdlib only, relative imports, a __main__."""
    root = tmp_path / "kernel"
    (root / "sub").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "sub" / "__init__.py").write_text("")
    (root / "sub" / "words.py").write_text("GREETING = 'fake kernel ok'\n")
    (root / "__main__.py").write_text("from .sub.words import GREETING\nprint(GREETING)\n")
    return root


def run_in(client: docker.DockerClient, image: str, command: list[str] | None = None) -> str:
    """Run a container with no network, return its output, and always remove it."""
    container = client.containers.run(image, command, network_mode="none", detach=True)
    try:
        status = container.wait(timeout=120)
        output = container.logs().decode()
        assert status["StatusCode"] == 0, output
        return output
    finally:
        container.remove(force=True)


# --- tags ---------------------------------------------------------------------------

def test_hash_ignores_location_caches_and_non_python(fake_kernel: Path, tmp_path: Path) -> None:
    before = image_mod.kernel_hash(fake_kernel)
    assert re.fullmatch(r"[0-9a-f]{12}", before)
    (fake_kernel / "__pycache__").mkdir()
    (fake_kernel / "__pycache__" / "__main__.cpython-311.pyc").write_bytes(b"junk")
    (fake_kernel / "NOTES.txt").write_text("not shipped")
    moved = shutil.copytree(fake_kernel, tmp_path / "elsewhere" / "kernel")
    assert image_mod.kernel_hash(fake_kernel) == image_mod.kernel_hash(moved) == before


@pytest.mark.parametrize(
    "change",
    [
        lambda root: (root / "sub" / "words.py").write_text("GREETING = 'changed'\n"),
        lambda root: (root / "extra.py").write_text(""),
        lambda root: (root / "sub" / "words.py").rename(root / "sub" / "other.py"),
    ],
    ids=["edit", "add", "rename"],
)
def test_hash_changes_with_the_kernel(fake_kernel: Path, change) -> None:
    before = image_mod.kernel_hash(fake_kernel)
    change(fake_kernel)
    assert image_mod.kernel_hash(fake_kernel) != before


def test_hash_changes_with_the_dockerfile(fake_kernel: Path, tmp_path: Path) -> None:
    dockerfile = tmp_path / "Dockerfile"
    shutil.copyfile(image_mod.sandbox_image_dir() / "Dockerfile", dockerfile)
    before = image_mod.kernel_hash(fake_kernel, dockerfile)
    assert before == image_mod.kernel_hash(fake_kernel)
    dockerfile.write_text(dockerfile.read_text() + "\n# changed\n")
    assert image_mod.kernel_hash(fake_kernel, dockerfile) != before


def test_default_tag_follows_the_installed_kernel(tmp_path: Path, monkeypatch) -> None:
    tag = image_mod.default_image_tag()
    assert re.fullmatch(r"rlm-sandbox:kernel-[0-9a-f]{12}", tag)
    copy = shutil.copytree(image_mod.kernel_dir(), tmp_path / "kernel",
                           ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(image_mod, "kernel_dir", lambda: copy)
    assert image_mod.default_image_tag() == tag
    main = copy / "__main__.py"
    main.write_text(main.read_text() + "\n# a new kernel\n")
    assert image_mod.default_image_tag() != tag


def test_explicit_base_gets_its_own_tag() -> None:
    plain = image_mod.default_image_tag()
    numpy = image_mod.default_image_tag("example/python-numpy:3.12")
    assert numpy.startswith(plain + "-base-") and re.fullmatch(r".*-base-[0-9a-f]{8}", numpy)
    assert image_mod.default_image_tag("other:1") not in (plain, numpy)


def test_missing_kernel_sources_say_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="No kernel sources"):
        image_mod.kernel_hash(tmp_path)


# --- packaging ----------------------------------------------------------------------

def test_wheel_ships_the_build_files_and_finds_them_installed(tmp_path: Path) -> None:
    dist, site = tmp_path / "dist", tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", str(REPO), "-w", str(dist)],
                   check=True, capture_output=True, timeout=600)
    (wheel,) = dist.glob("rlm_sandbox-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in ("rlm_sandbox/_sandbox_image/Dockerfile", "rlm_sandbox/_sandbox_image/build-base.sh",
                 "rlm_sandbox/sandbox/image.py", "rlm_sandbox/kernel/__main__.py"):
        assert name in names

    subprocess.run([*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    probe = ("from rlm_sandbox.sandbox import image as m; "
             "print(m.sandbox_image_dir()); print(m.kernel_dir()); print(m.kernel_hash())")
    # cwd is not the checkout, so the installed copy is the one imported.
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, check=True, text=True,
                         capture_output=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(site)}).stdout.split()
    assert out[0] == str(site / "rlm_sandbox" / "_sandbox_image")
    assert out[1] == str(site / "rlm_sandbox" / "kernel")
    assert out[2] == image_mod.kernel_hash(), "an installed copy must name the same image"


# --- images -------------------------------------------------------------------------

@pytest.mark.docker
@pytest.mark.timeout(900)  # on a machine with no base yet, this builds one from Debian packages
def test_ensure_image_builds_a_runnable_non_root_image(docker_client: docker.DockerClient,
                                                       ) -> None:
    tag = image_mod.ensure_image(progress=False, client=docker_client)
    assert tag == image_mod.default_image_tag()
    built = docker_client.images.get(tag)
    assert built.labels[image_mod.KERNEL_HASH_LABEL] == image_mod.kernel_hash()
    assert built.attrs["Config"]["User"] == "65534:65534"

    probe = "import os, sys, rlm_kernel; print(os.getuid(), os.getgid(), sys.version_info >= (3, 11))"
    output = run_in(docker_client, tag, ["python3", "-c", probe])
    assert output.split() == ["65534", "65534", "True"]
    assert image_mod.ensure_image(progress=False, client=docker_client) == tag
    assert docker_client.images.get(tag).id == built.id, "a present image must not be rebuilt"


@pytest.mark.docker
def test_build_image_ships_exactly_the_kernel_it_hashed(docker_client: docker.DockerClient,
                                                         fake_kernel: Path) -> None:
    tag = f"rlm-sandbox-test:fake-{uuid.uuid4().hex[:8]}"
    base = image_mod.ensure_base(docker_client, progress=False)
    try:
        image_mod.build_image(tag, base, client=docker_client, kernel_root=fake_kernel,
                              progress=False)
        labels = docker_client.images.get(tag).labels
        assert labels[image_mod.KERNEL_HASH_LABEL] == image_mod.kernel_hash(fake_kernel)
        assert run_in(docker_client, tag).strip() == "fake kernel ok"  # the image's own CMD
    finally:
        docker_client.images.remove(tag, force=True)


@pytest.mark.docker
def test_sources_edited_after_naming_the_tag_are_not_built(docker_client: docker.DockerClient,
                                                           fake_kernel: Path) -> None:
    base = image_mod.ensure_base(docker_client, progress=False)
    with pytest.raises(ImageError, match="changed while"):
        image_mod.build_image("rlm-sandbox-test:never", base, client=docker_client,
                              kernel_root=fake_kernel, progress=False, expect_hash="0" * 12)


def remove_image_and_descendants(client: docker.DockerClient, image_id: str) -> None:
    """Remove an image and the layers a (failed) build left on top of it."""
    children: dict[str, list[str]] = {}
    for entry in client.api.images(all=True):
        children.setdefault(entry.get("ParentId", ""), []).append(entry["Id"])

    def remove(image: str) -> None:
        for child in children.get(image, []):
            remove(child)
        try:
            client.images.remove(image, force=True)
        except docker.errors.ImageNotFound:
            pass  # already pruned along with a child

    remove(image_id)


@pytest.mark.docker
def test_a_base_without_python_fails_with_advice(docker_client: docker.DockerClient,
                                                  fake_kernel: Path) -> None:
    name = f"rlm-sandbox-test:nopython-{uuid.uuid4().hex[:8]}"
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        info = tarfile.TarInfo("README")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"empty"))
    repo, tag = name.split(":")
    docker_client.api.import_image_from_data(payload.getvalue(), repository=repo, tag=tag)
    empty_id = docker_client.images.get(name).id
    try:
        with pytest.raises(ImageError, match="python3 >= 3.11"):
            image_mod.build_image(f"{name}-built", name, client=docker_client,
                                  kernel_root=fake_kernel, progress=False)
    finally:
        remove_image_and_descendants(docker_client, empty_id)


@pytest.mark.docker
def test_a_missing_user_image_says_how_to_get_it(docker_client: docker.DockerClient) -> None:
    image_id = docker_client.images.get(image_mod.ensure_image(progress=False, client=docker_client)).id
    assert image_mod.ensure_image(image_id, client=docker_client) == image_id  # present, has the kernel: used
    with pytest.raises(ImageError, match="docker pull"):
        image_mod.ensure_image("rlm-sandbox-test:no-such-image", client=docker_client)
