"""Reading the context (and the question) a command line names.

Sources: ``-f PATH`` (repeatable; ``-`` is stdin), ``--context-dir DIR`` with ``--glob``, or
piped stdin when neither is given. One file is its content; several become a list in the
order given, or a dict keyed by file name with ``--context-as dict``. Each file is read by
``--context-format`` (``auto``: JSON for ``.json`` files, text otherwise). Every problem is
one line naming the option, and exit code 2, before anything starts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from .common import fail

FORMATS = ("auto", "text", "json", "lines", "bytes")
SHAPES = ("auto", "list", "dict")


def read_source(path: str, option: str) -> bytes:
    """The bytes of ``path`` (``-``: stdin), or a one-line failure naming ``option``."""
    if path == "-":
        return sys.stdin.buffer.read()
    file = Path(path)
    if file.is_dir():
        raise fail(f"{option} {path}: is a directory; give a file (or - for stdin)"
                   + ("; --context-dir reads a directory" if option == "--context-file" else ""))
    if not file.exists():
        raise fail(f"{option} {path}: does not exist (give a path, or - for stdin)")
    try:
        return file.read_bytes()
    except OSError as exc:
        raise fail(f"{option} {path}: cannot be read ({exc.strerror})") from None


def load_query(query: str | None, query_file: str | None) -> str:
    if (query is None) == (query_file is None):
        raise fail("give the question with --query TEXT or --query-file PATH (one of them)")
    if query_file is not None:
        try:
            query = read_source(query_file, "--query-file").decode("utf-8")
        except UnicodeDecodeError:
            raise fail(f"--query-file {query_file}: is not UTF-8 text") from None
    assert query is not None
    if not query.strip():
        raise fail(f"{'--query-file ' + str(query_file) if query_file else '--query'}: the question is empty; "
                   "give the question to answer")
    return query


def parse(data: bytes, name: str, fmt: str, option: str) -> Any:
    """One source's bytes as the context value its format says."""
    if fmt == "auto":
        fmt = "json" if name.endswith(".json") else "text"
    if fmt == "bytes":
        return data
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise fail(f"{option} {name}: is not UTF-8 text; use --context-format bytes") from None
    if fmt == "json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise fail(f"{option} {name}: is not valid JSON ({exc}); use --context-format text") from None
    if fmt == "lines":
        return text.splitlines()
    return text


def _dir_files(directory: str, pattern: str) -> list[Path]:
    root = Path(directory)
    if not root.is_dir():
        raise fail(f"--context-dir {directory}: " + ("is not a directory" if root.exists() else "does not exist"))
    files = sorted(path for path in root.glob(pattern) if path.is_file())
    if not files:
        raise fail(f"--context-dir {directory} --glob {pattern!r}: no file matches; try --glob '**/*' for every "
                   "file below it")
    return files


def load_context(files: list[str], directory: str | None, pattern: str, fmt: str, shape: str,
                 stdin_is_piped: bool) -> Any:
    """The run's context from the command line's sources (see the module's docstring)."""
    if fmt not in FORMATS:
        raise fail(f"--context-format {fmt}: not a format; use one of {', '.join(FORMATS)}")
    if shape not in SHAPES:
        raise fail(f"--context-as {shape}: not a shape; use one of {', '.join(SHAPES)}")
    if files.count("-") > 1:
        raise fail("-f - is given twice; stdin can be read once")
    named: list[tuple[str, str, bytes]] = []  # (key, option, bytes)
    for path in files:
        named.append(("stdin" if path == "-" else path, "--context-file", read_source(path, "--context-file")))
    if directory is not None:
        root = Path(directory)
        for file in _dir_files(directory, pattern):
            named.append((file.relative_to(root).as_posix(), "--context-dir", read_source(str(file), "--context-dir")))
    if not named:
        if not stdin_is_piped:
            raise fail("give the context with -f PATH (repeatable), --context-dir DIR, or pipe it on stdin")
        named.append(("stdin", "stdin", sys.stdin.buffer.read()))
        if not named[0][2]:
            raise fail("stdin is empty: pipe the context in, or give it with -f PATH or --context-dir DIR")
    values = [(key, parse(data, key, fmt, option)) for key, option, data in named]
    if shape == "auto" and len(values) == 1 and directory is None:
        return values[0][1]
    if shape == "dict":
        keys = [_key(path) for path, _ in values] if directory is None else [path for path, _ in values]
        if len(set(keys)) < len(keys):  # two files of the same name in different places
            keys = [path for path, _ in values]
        if len(set(keys)) < len(keys):
            raise fail("--context-as dict: the same file is given twice; give each file once")
        return dict(zip(keys, (value for _, value in values), strict=True))
    return [value for _, value in values]


def _key(path: str) -> str:
    return "stdin" if path == "stdin" else Path(path).name
