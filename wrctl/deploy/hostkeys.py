"""Host key checking against an OpenSSH known_hosts file: unknown keys are refused unless the
caller opts in (then appended atomically), changed keys are always refused."""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import os
import threading
from dataclasses import dataclass
from pathlib import Path

import paramiko

from wrctl.errors import WrctlError

_append_lock = threading.Lock()  # parallel rollouts may accept several hosts at once


class HostKeyError(WrctlError):
    """The host's key could not be trusted."""


class UnknownHostKey(HostKeyError):
    """The host is not in known_hosts (and accepting new keys was not asked for)."""

    def __init__(self, host: str, key: paramiko.PKey, known_hosts: Path) -> None:
        super().__init__(
            f"{host}: unknown host key ({key.get_name()} {fingerprint(key)}), not in "
            f"{known_hosts}.\n  Check the fingerprint with the host's administrator "
            "(`ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub` on the host), then run again with "
            "--accept-new-host-key to add it."
        )
        self.host = host
        self.fingerprint = fingerprint(key)


class HostKeyChanged(HostKeyError):
    """The host presented a key other than the one known_hosts holds: never accepted."""

    def __init__(self, host: str, presented: paramiko.PKey, entry: KnownHostEntry) -> None:
        super().__init__(
            f"{host}: HOST KEY CHANGED. known_hosts expects {entry.key.get_name()} "
            f"{fingerprint(entry.key)} ({entry.path}:{entry.line}), the host presented "
            f"{presented.get_name()} {fingerprint(presented)}.\n  This may be an attack "
            "(man in the middle) or a reinstalled host. If the change is expected, remove "
            f"line {entry.line} of {entry.path} (`ssh-keygen -R {host} -f {entry.path}`) and "
            "run again with --accept-new-host-key."
        )
        self.host = host
        self.expected = fingerprint(entry.key)
        self.presented = fingerprint(presented)


@dataclass(frozen=True)
class KnownHostEntry:
    path: Path
    line: int
    key: paramiko.PKey


def fingerprint(key: paramiko.PKey) -> str:
    """The OpenSSH SHA256 fingerprint (`ssh-keygen -l -E sha256`)."""
    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def host_id(hostname: str, port: int) -> str:
    """How known_hosts names a host: `host` on port 22, `[host]:port` otherwise."""
    return hostname if port == 22 else f"[{hostname}]:{port}"


def _pattern_matches(pattern: str, host: str) -> bool:
    if pattern.startswith("|1|"):  # hashed: |1|base64(salt)|base64(hmac-sha1(salt, host))
        try:
            _, _, salt, hashed = pattern.split("|")
            mac = hmac.new(base64.b64decode(salt), host.encode(), hashlib.sha1).digest()
        except ValueError:
            return False
        return hmac.compare_digest(base64.b64encode(mac).decode(), hashed)
    return pattern == host


def entries_for(path: Path, host: str) -> list[KnownHostEntry]:
    """The known_hosts lines naming `host` (markers such as @revoked and negations skipped)."""
    if not path.exists():
        return []
    found: list[KnownHostEntry] = []
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        fields = raw.split()
        if len(fields) < 3 or raw.lstrip().startswith(("#", "@")):
            continue
        patterns = fields[0].split(",")
        if not any(_pattern_matches(p, host) for p in patterns):
            continue
        try:
            key = paramiko.PKey.from_type_string(fields[1], base64.b64decode(fields[2]))
        except Exception:  # a key type paramiko cannot load says nothing about this host
            continue
        found.append(KnownHostEntry(path, number, key))
    return found


def append_key(path: Path, host: str, key: paramiko.PKey) -> None:
    """Add `host key` to known_hosts atomically (write a copy, fsync, rename over)."""
    with _append_lock:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lock_path = path.with_name(f".{path.name}.lock")
        with open(lock_path, "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            old = path.read_bytes() if path.exists() else b""
            if old and not old.endswith(b"\n"):
                old += b"\n"
            line = f"{host} {key.get_name()} {key.get_base64()}\n".encode()
            tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, old + line)
                os.fsync(fd)
            finally:
                os.close(fd)
            if path.exists():
                os.chmod(tmp, path.stat().st_mode & 0o777)
            tmp.replace(path)


class KnownHostsPolicy(paramiko.MissingHostKeyPolicy):  # type: ignore[misc]
    """Called by paramiko when none of the loaded keys names the host: refuse, or with
    accept_new record the key. (Keys that are loaded but differ raise BadHostKeyException in
    paramiko itself; the transport turns that into HostKeyChanged.)"""

    def __init__(self, known_hosts: Path, accept_new: bool) -> None:
        self.known_hosts = known_hosts
        self.accept_new = accept_new

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        if not self.accept_new:
            raise UnknownHostKey(hostname, key, self.known_hosts)
        append_key(self.known_hosts, hostname, key)


def changed_key_error(
    known_hosts: Path, host: str, presented: paramiko.PKey, expected: paramiko.PKey
) -> HostKeyChanged:
    """The HostKeyChanged for a mismatch paramiko found, pointing at the known_hosts line."""
    entries = entries_for(known_hosts, host)
    same_type = [e for e in entries if e.key.get_name() == expected.get_name()]
    entry = (same_type or entries or [KnownHostEntry(known_hosts, 0, expected)])[0]
    return HostKeyChanged(host, presented, entry)


def load_known_hosts(client: paramiko.SSHClient, known_hosts: Path) -> None:
    """Let paramiko know the recorded keys (it then prefers their types when negotiating)."""
    if known_hosts.exists():
        client.load_system_host_keys(str(known_hosts))  # never written back
