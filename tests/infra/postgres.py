"""A private PostgreSQL cluster for the test session: Debian binaries, loopback, no systemd."""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.infra import _stale, policy
from tests.infra.process import ManagedProcess, free_port, wait_until

HOST = "127.0.0.1"
DIR_PREFIX = "wrtest-pg-"
READY_DEADLINE_S = 30.0
INSTALL_HINT = "run `bash scripts/install-test-deps.sh` (apt-get install postgresql)"
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def find_bindir() -> Path | None:
    """The bin dir of the newest installed Debian PostgreSQL major, else the one on PATH."""

    def major(path: Path) -> int:
        return int(path.parent.parent.name) if path.parent.parent.name.isdigit() else -1

    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=major)
    if candidates:
        return candidates[-1].parent
    on_path = shutil.which("initdb")
    return Path(on_path).parent if on_path else None


@dataclass
class PostgresServer:
    """A running cluster: superuser `user` logs in over TCP on host:port without a password."""

    host: str
    port: int
    user: str
    bindir: Path
    data_dir: Path

    def dsn(self, db: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{db}"

    def psql(self, sql: str, db: str = "postgres") -> str:
        """Run sql with psql and return its unaligned output; raise with psql's error."""
        argv = [str(self.bindir / "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql]
        argv += ["-h", self.host, "-p", str(self.port), "-U", self.user, "-d", db]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise RuntimeError(f"psql {sql!r} on {db}: {done.stderr.strip()}")
        return done.stdout.strip()

    def create_database(self, name: str) -> str:
        """Create database `name` (lower-case identifier) and return its DSN."""
        if not _DB_NAME.match(name):
            raise ValueError(f"database name {name!r}: expected [a-z_][a-z0-9_]*, <= 63 chars")
        self.psql(f'CREATE DATABASE "{name}"')
        return self.dsn(name)


def _run_as(user: str | None, argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, user=user, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr.strip()}")


def _start_cluster(bindir: Path, run_as: str | None, base: Path) -> tuple[ManagedProcess, int]:
    data = base / "data"
    initdb = [str(bindir / "initdb"), "-A", "trust", "--no-sync", "-E", "UTF8", "--locale=C"]
    _run_as(run_as, [*initdb, "-D", str(data)], "initdb")
    port = free_port(HOST)
    return _launch(bindir, run_as, base, port), port


def _launch(bindir: Path, run_as: str | None, base: Path, port: int) -> ManagedProcess:
    argv = [str(bindir / "postgres"), "-D", str(base / "data"), "-p", str(port), "-h", HOST]
    argv += ["-k", str(base), "-c", "fsync=off", "-c", "full_page_writes=off"]
    argv += ["-c", "synchronous_commit=off", "-c", "max_connections=200"]
    # SIGINT is PostgreSQL's "fast" shutdown; SIGTERM would wait for every client to leave.
    server = ManagedProcess(
        argv, base / "postgres.log", user=run_as, name="postgres", stop_signal=signal.SIGINT
    )
    return server.start()


def _wait_accepting(server: ManagedProcess, bindir: Path, port: int, user: str) -> None:
    isready = [str(bindir / "pg_isready"), "-q", "-h", HOST, "-p", str(port), "-U", user]
    # An open port is not enough: during startup the server still refuses logins.
    server.wait_ready(port, READY_DEADLINE_S, HOST)
    try:
        wait_until(
            lambda: subprocess.run(isready, timeout=5).returncode == 0,
            READY_DEADLINE_S,
            f"postgres on {HOST}:{port} to accept logins",
        )
    except TimeoutError as exc:
        raise RuntimeError(f"{exc}\n--- postgres log ---\n{server.log_tail()}") from None


def _run_as_user() -> str | None:
    """None, or the distro's `postgres` account when we are root (initdb refuses root)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        policy.unavailable("the `postgres` system user", INSTALL_HINT)
    return "postgres"


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A fresh cluster on a free loopback port, stopped and deleted at the end of the session."""
    with _private_cluster() as (cluster, _):
        yield cluster


@dataclass
class RestartablePostgres:
    """A test's own cluster that it may stop and start again (same port, same data)."""

    server: PostgresServer
    run_as: str | None
    process: ManagedProcess | None

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(grace_s=10)
            self.process = None

    def start(self) -> None:
        assert self.process is None, "postgres is already running"
        base = self.server.data_dir.parent
        self.process = _launch(self.server.bindir, self.run_as, base, self.server.port)
        _wait_accepting(self.process, self.server.bindir, self.server.port, self.server.user)


@pytest.fixture
def private_postgres() -> Iterator[RestartablePostgres]:
    """A cluster of this test alone (the session's one must not be restarted under others)."""
    with _private_cluster() as (cluster, process):
        handle = RestartablePostgres(cluster, _run_as_user(), process)
        try:
            yield handle
        finally:
            handle.stop()


@contextlib.contextmanager
def _private_cluster() -> Iterator[tuple[PostgresServer, ManagedProcess]]:
    bindir = find_bindir()
    if bindir is None:
        policy.unavailable("PostgreSQL (initdb)", INSTALL_HINT)
    run_as = _run_as_user()
    base = _stale.owned_temp_dir(DIR_PREFIX)
    if run_as is not None:
        shutil.chown(base, run_as, run_as)
    server: ManagedProcess | None = None
    try:
        server, port = _start_cluster(bindir, run_as, base)
        user = run_as or pwd.getpwuid(os.geteuid()).pw_name
        _wait_accepting(server, bindir, port, user)
        yield PostgresServer(HOST, port, user, bindir, base / "data"), server
    finally:
        if server is not None:
            server.stop(grace_s=10)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_dsn(postgres: PostgresServer) -> str:
    """The DSN of a database created for this test run."""
    return postgres.create_database(f"wruntime_test_{os.getpid()}")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses `postgres` so `-m "not postgres"` deselects them."""
    for item in items:
        if {"postgres", "private_postgres"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.postgres)
