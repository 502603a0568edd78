"""Network namespaces on a private bridge for fake hosts, named after the owning pytest PID.

Names carry the PID of the pytest process that made them plus a letter per network
(`wrtest-<pid><k>-<i>`, bridge `wrb<pid><k>`, veth `wrv<pid><k>h<i>`: at most 15 characters),
so a session only ever removes what it made itself or what a dead session left behind, never
the namespaces of another test run going on at the same time.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
import re
import shutil
import signal
import string
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.infra.process import wait_until

SUBNET_PREFIX = "10.213"  # used only inside namespaces these fixtures create
LOCK_PATH = Path("/run/lock/wruntime-test-netns.lock")
_NS_NAME = re.compile(r"^wrtest-(\d+)[a-z]-\d+$")
_LINK_NAME = re.compile(r"^wr[bv](\d+)[a-z](?:[hn]\d+)?$")
_network_letters = itertools.cycle(string.ascii_lowercase)


class NamespaceError(RuntimeError):
    """An `ip`/`unshare` command failed; the message holds the command and its stderr."""


def run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise NamespaceError(
            f"`{' '.join(argv)}` failed ({done.returncode}): {done.stderr.strip()}"
        )
    return done.stdout


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def namespaces() -> list[str]:
    return [line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line]


def links() -> list[str]:
    """Names of the links in the current namespace (without the `@peer` suffix)."""
    out = run(["ip", "-o", "link", "show"])
    return [line.split(":")[1].strip().split("@")[0] for line in out.splitlines() if line]


def process_gone(pid: int) -> bool:
    """True when pid no longer runs (exited, or a zombie waiting to be reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def delete_namespace(ns: str) -> None:
    """Kill every process in ns (sshd and anything started over SSH), then remove it."""
    with contextlib.suppress(NamespaceError):
        pids = [int(pid) for pid in run(["ip", "netns", "pids", ns]).split()]
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        wait_until(
            lambda: all(process_gone(pid) for pid in pids), 5.0, f"the processes of {ns} to die"
        )
    with contextlib.suppress(NamespaceError):
        run(["ip", "netns", "delete", ns])
    shutil.rmtree(Path("/etc/netns") / ns, ignore_errors=True)


def delete_link(name: str) -> None:
    with contextlib.suppress(NamespaceError):
        run(["ip", "link", "delete", name])


def remove_stale() -> list[str]:
    """Remove namespaces and links whose owning pytest process is gone; return their names."""
    removed = []
    for ns in namespaces():
        match = _NS_NAME.match(ns)
        if match and not pid_alive(int(match.group(1))):
            delete_namespace(ns)
            removed.append(ns)
    for link in links():
        match = _LINK_NAME.match(link)
        if match and not pid_alive(int(match.group(1))):
            delete_link(link)
            removed.append(link)
    return removed


@contextlib.contextmanager
def subnet_lock() -> Iterator[None]:
    """Serialise subnet choice between test sessions running at the same time."""
    LOCK_PATH.parent.mkdir(parents=True, exist_ok=True)
    with open(LOCK_PATH, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def free_subnet() -> int:
    """The first x such that SUBNET_PREFIX.x.0/24 is on no link of this namespace."""
    used = set(re.findall(rf"inet {re.escape(SUBNET_PREFIX)}\.(\d+)\.", run(["ip", "-o", "addr"])))
    for x in range(1, 255):
        if str(x) not in used:
            return x
    raise NamespaceError(f"no free {SUBNET_PREFIX}.x.0/24 subnet left")


@dataclass
class HostNetwork:
    """A bridge in the root namespace plus one namespace per fake host, all on one /24."""

    tag: str  # owner PID + a letter
    subnet: int
    namespaces: list[str]

    @property
    def bridge(self) -> str:
        return f"wrb{self.tag}"

    @property
    def gateway(self) -> str:
        return f"{SUBNET_PREFIX}.{self.subnet}.1"

    def address(self, index: int) -> str:
        return f"{SUBNET_PREFIX}.{self.subnet}.{10 + index}"

    def add_host(self, index: int, hostname: str) -> str:
        """Create namespace `wrtest-<tag>-<index>` wired to the bridge; return its name."""
        ns, host_end, ns_end = (
            f"wrtest-{self.tag}-{index}",
            f"wrv{self.tag}h{index}",
            f"wrv{self.tag}n{index}",
        )
        run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        # `ip netns exec` bind-mounts /etc/netns/<ns>/* over /etc: sudo finds its hostname.
        etc = Path("/etc/netns") / ns
        etc.mkdir(parents=True, exist_ok=True)
        (etc / "hosts").write_text(f"127.0.0.1 localhost\n{self.address(index)} {hostname}\n")
        (etc / "hostname").write_text(f"{hostname}\n")
        run(["ip", "link", "add", host_end, "type", "veth", "peer", "name", ns_end, "netns", ns])
        run(["ip", "link", "set", host_end, "master", self.bridge, "up"])
        inside = ["ip", "netns", "exec", ns, "ip"]
        run([*inside, "link", "set", ns_end, "name", "eth0"])
        run([*inside, "addr", "add", f"{self.address(index)}/24", "dev", "eth0"])
        run([*inside, "link", "set", "eth0", "up"])
        run([*inside, "link", "set", "lo", "up"])
        return ns

    def destroy(self) -> None:
        for ns in self.namespaces:
            delete_namespace(ns)  # takes its veth pair with it
        delete_link(self.bridge)


def create_network() -> HostNetwork:
    """A fresh bridge on a free 10.213.x.0/24 (the root namespace holds .1)."""
    tag = f"{os.getpid()}{next(_network_letters)}"
    with subnet_lock():
        net = HostNetwork(tag, free_subnet(), [])
        run(["ip", "link", "add", net.bridge, "type", "bridge"])
        try:
            run(["ip", "addr", "add", f"{net.gateway}/24", "dev", net.bridge])
            run(["ip", "link", "set", net.bridge, "up"])
        except NamespaceError:
            delete_link(net.bridge)
            raise
    return net
