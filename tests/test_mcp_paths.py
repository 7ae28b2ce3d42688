"""What ``rlm_answer`` reads for the paths a client gives: confinement to the root, directory and
glob expansion, caps, and the context's shape. Real files and symlinks in a temporary tree; no
Docker and no model (the server's end-to-end tests are in tests/test_mcp.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rlm_sandbox.serve.mcp_paths import FileLimits, PathRefused, read_files


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "docs" / "deep").mkdir(parents=True)
    (root / "docs" / "a.md").write_text("A")
    (root / "docs" / "deep" / "b.md").write_text("B")
    (root / "docs" / "c.txt").write_text("C")
    (root / "notes.txt").write_text("N")
    (tmp_path / "outside.txt").write_text("secret")
    return root


def test_a_directory_expands_to_every_file_below_it_named_by_path(tree):
    assert read_files(["docs"], tree, FileLimits()) == {"docs/a.md": "A", "docs/c.txt": "C", "docs/deep/b.md": "B"}


def test_a_glob_picks_files_relative_to_the_root(tree):
    assert read_files(["docs/**/*.md"], tree, FileLimits()) == {"docs/a.md": "A", "docs/deep/b.md": "B"}


def test_a_symlink_that_stays_inside_the_root_is_followed_and_a_file_is_read_once(tree):
    (tree / "docs" / "again").symlink_to(tree / "docs" / "deep")
    (tree / "link.txt").symlink_to(tree / "notes.txt")
    files = read_files(["link.txt", "notes.txt", "docs"], tree, FileLimits())
    assert files == {"link.txt": "N", "docs/a.md": "A", "docs/again/b.md": "B", "docs/c.txt": "C"}


@pytest.mark.parametrize("make, path", [
    (lambda root: None, "../outside.txt"),
    (lambda root: None, "docs/../../outside.txt"),
    (lambda root: (root / "docs" / "leak").symlink_to(root.parent / "outside.txt"), "docs"),
    (lambda root: (root / "up").symlink_to(root.parent), "up/outside.txt"),
    (lambda root: None, "../*.txt"),
])
def test_paths_that_leave_the_root_are_refused_naming_them(tree, make, path):
    make(tree)
    with pytest.raises(PathRefused, match="outside the root") as caught:
        read_files(["notes.txt", path], tree, FileLimits())
    assert "secret" not in str(caught.value)


def test_an_absolute_path_inside_the_root_is_accepted_and_one_outside_refused(tree):
    assert read_files([str(tree / "notes.txt")], tree, FileLimits()) == {str(tree / "notes.txt"): "N"}
    with pytest.raises(PathRefused, match="outside the root"):
        read_files([str(tree.parent / "outside.txt")], tree, FileLimits())


def test_caps_on_files_and_bytes_are_checked_before_anything_is_read(tree):
    with pytest.raises(PathRefused, match="name 3 files, more than the server's cap of 2"):
        read_files(["docs"], tree, FileLimits(max_files=2))
    (tree / "big.txt").write_text("x" * 100)
    with pytest.raises(PathRefused, match=r"'big.txt': the files given pass the server's cap of 100 bytes"):
        read_files(["notes.txt", "big.txt"], tree, FileLimits(max_bytes=100))


def test_empty_missing_and_unmatched_paths_say_what_to_give(tree):
    with pytest.raises(PathRefused, match="an empty path"):
        read_files([" "], tree, FileLimits())
    with pytest.raises(PathRefused, match="'gone.txt': does not exist under the root"):
        read_files(["gone.txt"], tree, FileLimits())
    with pytest.raises(PathRefused, match="no file under the root .* matches this glob"):
        read_files(["*.pdf"], tree, FileLimits())
    with pytest.raises(PathRefused, match="a glob must be relative to the root"):
        read_files([str(tree / "*.txt")], tree, FileLimits())


def test_one_source_is_the_context_itself_and_several_a_dict_by_name(tree):
    pytest.importorskip("mcp", reason="the mcp extra is not installed: pip install -e '.[mcp]'")
    from rlm_sandbox.sandbox import SandboxSpec
    from rlm_sandbox.serve.mcp_server import McpConfig, _context

    config = McpConfig(root=tree, trace_dir=tree, sandbox_spec=SandboxSpec(), files=FileLimits(max_bytes=10))
    assert _context(["notes.txt"], None, config) == "N"
    assert _context(None, "just text", config) == "just text"
    assert _context(None, None, config) is None
    assert _context(["notes.txt", "docs/a.md"], "T", config) == {"notes.txt": "N", "docs/a.md": "A", "(text)": "T"}
    with pytest.raises(PathRefused, match="text: with the files given it passes the server's cap of 10 bytes"):
        _context(["notes.txt"], "0123456789", config)
