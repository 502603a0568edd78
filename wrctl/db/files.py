"""A module's migrations directory: `V<n>__<name>.sql` files, read and checked [pure but for
reading the directory], and the statements of a script located (for error messages only:
the server runs the whole file, so a splitter that misjudges exotic SQL costs nothing but
the statement text in an error)."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

FILE_RE = re.compile(r"V(?P<version>[0-9]+)__(?P<name>[A-Za-z0-9_-]+)\.sql")
FILE_RULE = "V<version>__<name>.sql: a version of 1 or more, name of A-Z a-z 0-9 _ -"
MAX_VERSION = 2**31 - 1  # an int4 in the wr_migrations table


class MigrationFileError(ValueError):
    """A migrations directory or file that cannot be used; the message names it."""


@dataclass(frozen=True)
class MigrationFile:
    version: int
    name: str  # the file name, V2__add_price.sql
    checksum: str  # sha256:<hex> of the file's bytes
    sql: str


def parse_name(filename: str) -> int | str:
    """The version of a migration file name, or why the name is not one."""
    match = FILE_RE.fullmatch(filename)
    if not match:
        return f"{filename!r} is not a migration file name ({FILE_RULE})"
    version = int(match["version"])
    if not 1 <= version <= MAX_VERSION:
        return f"{filename!r}: the version must be between 1 and {MAX_VERSION}"
    return version


def is_candidate(path: Path) -> bool:
    """The files a migrations directory is made of: every `*.sql` (any case) that is not
    hidden. Other files (a README, .gitkeep) are left alone."""
    return path.suffix.lower() == ".sql" and not path.name.startswith(".")


def read_migrations(directory: Path) -> list[MigrationFile]:
    """The directory's migrations in version order; MigrationFileError naming the first
    bad file (bad name, duplicate version, unreadable, not UTF-8)."""
    if not directory.is_dir():
        what = "is not a directory" if directory.exists() else "does not exist"
        raise MigrationFileError(f"migrations directory {directory} {what}")
    found: dict[int, MigrationFile] = {}
    try:
        entries = sorted(p for p in directory.iterdir() if is_candidate(p))
    except OSError as exc:
        raise MigrationFileError(f"cannot list {directory}: {exc.strerror}") from None
    for path in entries:
        version = parse_name(path.name)
        if isinstance(version, str):
            raise MigrationFileError(f"{directory}: {version}")
        if version in found:
            raise MigrationFileError(
                f"{directory}: {path.name} and {found[version].name} both have version "
                f"{version}; each version is run once, so it must be unique"
            )
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise MigrationFileError(f"cannot read {path}: {exc.strerror}") from None
        try:
            sql = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MigrationFileError(
                f"{path} is not UTF-8 text (byte {exc.start} is not valid UTF-8)"
            ) from None
        checksum = "sha256:" + hashlib.sha256(raw).hexdigest()
        found[version] = MigrationFile(version, path.name, checksum, sql)
    return [found[v] for v in sorted(found)]


def directory_problem(directory: Path) -> str | None:
    """Why `wrctl validate` refuses the directory, or None."""
    try:
        read_migrations(directory)
    except MigrationFileError as exc:
        return str(exc)
    return None


@dataclass(frozen=True)
class Statement:
    start: int  # offset of its first character of code (comments before it skipped)
    end: int  # offset just past it (its `;` included)
    text: str

    def line(self, script: str) -> int:
        return script.count("\n", 0, self.start) + 1


_DOLLAR = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")


def split_statements(script: str) -> list[Statement]:
    """The `;`-separated statements of a script, with quotes ('', E'', ""), dollar quotes
    and comments (--, nested /* */) skipped; empty statements left out."""
    out: list[Statement] = []
    start = i = 0
    n = len(script)
    while i < n:
        c = script[i]
        if c == "-" and script.startswith("--", i):
            nl = script.find("\n", i)
            i = n if nl < 0 else nl + 1
        elif c == "/" and script.startswith("/*", i):
            i = _skip_comments(script, i, n)
        elif c in "'\"":
            escapes = c == "'" and i > 0 and script[i - 1] in "eE"
            i += 1
            while i < n:
                if escapes and script[i] == "\\":
                    i += 2
                elif script[i] == c:
                    if script.startswith(c * 2, i):
                        i += 2
                    else:
                        break
                else:
                    i += 1
            i += 1
        elif c == "$" and (match := _DOLLAR.match(script, i)):
            close = script.find(match[0], match.end())
            i = n if close < 0 else close + len(match[0])
        elif c == ";":
            _add(out, script, start, i + 1)
            start = i = i + 1
        else:
            i += 1
    _add(out, script, start, n)
    return out


def _add(out: list[Statement], script: str, start: int, end: int) -> None:
    code = _skip_comments(script, start, end)
    text = script[code:end].strip()
    if text.strip(";").strip():
        out.append(Statement(code, end, text))


def _skip_comments(script: str, i: int, end: int) -> int:
    """The offset of the first character after the blanks and comments from i on."""
    while i < end:
        if script[i].isspace():
            i += 1
        elif script.startswith("--", i):
            nl = script.find("\n", i, end)
            i = end if nl < 0 else nl + 1
        elif script.startswith("/*", i):
            depth, i = 1, i + 2
            while i < end and depth:
                if script.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif script.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        else:
            break
    return i


def statement_at(script: str, position: int) -> Statement | None:
    """The statement holding the 1-based character `position` (what PostgreSQL reports)."""
    offset = position - 1
    for statement in split_statements(script):
        if statement.start <= offset < statement.end:
            return statement
    return None


def line_of(script: str, position: int) -> int:
    return script.count("\n", 0, max(position - 1, 0)) + 1
