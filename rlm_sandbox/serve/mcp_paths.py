"""The files an MCP client names, confined to the server's root before a byte is read.

A client of ``rlm-sandbox mcp`` is another program (a coding agent, a desktop assistant)
acting on a model's say-so, so every path it gives is untrusted: each is resolved with its
symlinks followed and must land inside ``--root``; a directory expands to the files below
it (or those a glob picks) and every one of them is checked the same way. Anything outside,
unreadable, not UTF-8 or over the size caps is refused with a message naming it, and
nothing is read until every path has passed.
"""

from __future__ import annotations

import glob as globlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import RLMSandboxError

__all__ = ["FileLimits", "PathRefused", "read_files"]

#: The key the ``text`` argument takes when the context is a dict of several sources.
TEXT_KEY = "(text)"


class PathRefused(RLMSandboxError, ValueError):
    """A path an MCP client gave cannot be read: outside the root, missing, unreadable,
    not UTF-8 text or over a size cap. The message names the path and what to do."""


@dataclass(frozen=True)
class FileLimits:
    """How much one ``rlm_answer`` call may read."""

    max_bytes: int = 64 * 1024 * 1024  # all files of one call together
    max_files: int = 1000


def _inside(path: Path, root: Path) -> bool:
    return path == root or path.is_relative_to(root)


def _confined(raw: str, candidate: Path, root: Path) -> Path:
    """``candidate`` resolved (symlinks followed), or PathRefused when it leaves ``root``."""
    try:
        resolved = candidate.resolve(strict=True)
    except FileNotFoundError:
        raise PathRefused(f"{raw!r}: does not exist under the root {str(root)!r}; give a path relative "
                          "to the root (or an absolute path inside it)") from None
    except (OSError, RuntimeError) as exc:  # a symlink loop, a permission error on a parent
        raise PathRefused(f"{raw!r}: cannot be resolved ({getattr(exc, 'strerror', None) or exc})") from None
    if not _inside(resolved, root):
        raise PathRefused(f"{raw!r}: resolves to {str(resolved)!r}, outside the root {str(root)!r}; only files "
                          "under the root can be read (start the server with another --root to allow more)")
    return resolved


def _walk(directory: Path, name: str, root: Path, seen: set[Path]) -> list[tuple[str, Path]]:
    """Every file below ``directory``, each checked; a symlink that leads out is an error, one
    that stays inside is followed (once: ``seen`` holds the directories walked)."""
    found: list[tuple[str, Path]] = []
    try:
        entries = sorted(directory.iterdir())
    except OSError as exc:
        raise PathRefused(f"{name!r}: cannot be listed ({exc.strerror})") from None
    for entry in entries:
        label = f"{name.rstrip('/')}/{entry.name}"
        resolved = _confined(label, entry, root)
        if resolved.is_dir():
            if resolved not in seen:
                seen.add(resolved)
                found.extend(_walk(entry, label, root, seen))
        elif resolved.is_file():
            found.append((label, resolved))
    return found


def _expand(raw: str, root: Path) -> list[tuple[str, Path]]:
    """The files one ``paths`` entry names, each as (the name it came by, its confined path)."""
    if not raw.strip():
        raise PathRefused("an empty path was given; give a file or directory under the root")
    if "\x00" in raw:
        raise PathRefused(f"{raw!r}: contains a NUL character; give a plain path")
    if globlib.has_magic(raw):
        if os.path.isabs(raw):
            raise PathRefused(f"{raw!r}: a glob must be relative to the root {str(root)!r}")
        matches = sorted(root.glob(raw))
        if not matches:
            raise PathRefused(f"{raw!r}: no file under the root {str(root)!r} matches this glob")
        named = [(m.relative_to(root).as_posix(), m) for m in matches]
    else:
        named = [(raw, root / raw)]  # an absolute `raw` replaces root here, and is then checked
    files: list[tuple[str, Path]] = []
    for name, candidate in named:
        resolved = _confined(name, candidate, root)
        if resolved.is_dir():
            files.extend(_walk(candidate, name, root, {resolved}))
        elif resolved.is_file():
            files.append((name, resolved))
        else:
            raise PathRefused(f"{name!r}: is not a regular file or directory")
    return files


def _read(name: str, path: Path, budget: int) -> tuple[str, int]:
    """One file's text and size, reading at most ``budget + 1`` bytes (a file may grow after
    its size was checked); O_NOFOLLOW so a symlink swapped in after the check is not followed."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise PathRefused(f"{name!r}: cannot be read ({exc.strerror})") from None
    with os.fdopen(fd, "rb") as file:
        data = file.read(budget + 1)
    if len(data) > budget:
        raise PathRefused(f"{name!r}: the files given pass the server's cap of {budget:,} bytes at this one; "
                          "give fewer or smaller files (or start the server with a larger --max-bytes)")
    try:
        return data.decode("utf-8"), len(data)
    except UnicodeDecodeError:
        raise PathRefused(f"{name!r}: is not UTF-8 text; give text files only (a narrower glob leaves "
                          "binary files out)") from None


def read_files(paths: list[str], root: Path, limits: FileLimits) -> dict[str, str]:
    """Every file ``paths`` names, as {name: text} in the order given. All paths are checked
    (confinement, count, sizes) before any is read."""
    root = root.resolve(strict=True)
    chosen: dict[Path, str] = {}
    for raw in paths:
        for name, resolved in _expand(raw, root):
            chosen.setdefault(resolved, name)
    if len(chosen) > limits.max_files:
        raise PathRefused(f"the paths given name {len(chosen):,} files, more than the server's cap of "
                          f"{limits.max_files:,}; give a narrower glob or fewer directories")
    total = 0
    for resolved, name in chosen.items():
        try:
            total += resolved.stat().st_size
        except OSError as exc:
            raise PathRefused(f"{name!r}: cannot be read ({exc.strerror})") from None
        if total > limits.max_bytes:
            raise PathRefused(f"{name!r}: the files given pass the server's cap of {limits.max_bytes:,} bytes at "
                              "this one; give fewer or smaller files (or start the server with a larger --max-bytes)")
    texts: dict[str, str] = {}
    left = limits.max_bytes
    for resolved, name in chosen.items():
        texts[name], size = _read(name, resolved, left)
        left -= size
    return texts
