"""Host key checking over real SSH: unknown keys refused (or added on request), changed keys
always refused, each with the fingerprints and the known_hosts line."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.infra.ssh_hosts import SshHost
from tests.integration.deploy.support import transport_for
from wrctl.deploy.hostkeys import HostKeyChanged, UnknownHostKey, entries_for, host_id


def _line_of(host: SshHost) -> str:
    (line,) = [
        entry
        for entry in host.known_hosts_path.read_text().splitlines()
        if entry.split()[0] == host_id(host.address, host.port)
    ]
    return line


def test_unknown_host_is_refused_with_its_fingerprint(
    ssh_hosts: list[SshHost], tmp_path: Path
) -> None:
    host = ssh_hosts[0]
    empty = tmp_path / "known_hosts"
    empty.write_text("# nothing known yet\n")
    with pytest.raises(UnknownHostKey) as caught:
        transport_for(host, known_hosts=str(empty))
    message = str(caught.value)
    assert host.host_key_fingerprint in message
    assert "ssh-ed25519" in message and host.address in message
    assert "--accept-new-host-key" in message
    assert empty.read_text() == "# nothing known yet\n"  # nothing was added


def test_accept_new_adds_the_key_then_it_is_trusted(
    ssh_hosts: list[SshHost], tmp_path: Path
) -> None:
    a, b = ssh_hosts
    known = tmp_path / "ssh" / "known_hosts"  # neither the file nor its dir exist yet
    for host in (a, b):
        t = transport_for(host, known_hosts=str(known), accept_new_host_key=True)
        assert t.run("true").ok
        t.close()
    entries = [line.split()[0] for line in known.read_text().splitlines()]
    assert entries == [host_id(a.address, a.port), host_id(b.address, b.port)]
    assert stat.S_IMODE(known.stat().st_mode) == 0o600
    again = transport_for(a, known_hosts=str(known))  # no opt-in needed any more
    assert again.run("true").ok
    again.close()


@pytest.mark.parametrize("accept_new", [False, True])
def test_changed_key_is_always_refused(
    ssh_hosts: list[SshHost], tmp_path: Path, accept_new: bool
) -> None:
    a, b = ssh_hosts
    # known_hosts says a has b's key: what a reinstalled host (or an attacker) looks like
    forged = _line_of(b).replace(host_id(b.address, b.port), host_id(a.address, a.port), 1)
    known = tmp_path / "known_hosts"
    known.write_text(f"# first line\n{forged}\n")
    with pytest.raises(HostKeyChanged) as caught:
        transport_for(a, known_hosts=str(known), accept_new_host_key=accept_new)
    message = str(caught.value)
    assert f"expects ssh-ed25519 {b.host_key_fingerprint}" in message
    assert f"presented ssh-ed25519 {a.host_key_fingerprint}" in message
    assert f"{known}:2" in message
    assert known.read_text() == f"# first line\n{forged}\n"  # untouched


def test_hashed_known_hosts_entries_are_understood(
    ssh_hosts: list[SshHost], tmp_path: Path
) -> None:
    import subprocess

    host = ssh_hosts[0]
    known = tmp_path / "known_hosts"
    known.write_text(_line_of(host) + "\n")
    subprocess.run(["ssh-keygen", "-H", "-f", str(known)], check=True, capture_output=True)
    assert known.read_text().startswith("|1|")
    (entry,) = entries_for(known, host_id(host.address, host.port))
    assert entry.line == 1
    t = transport_for(host, known_hosts=str(known))
    assert t.run("true").ok
    t.close()
