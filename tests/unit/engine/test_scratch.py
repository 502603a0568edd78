"""A request's scratch slot: what the guest wrote is counted without following its links, and
the host never reads or writes through a link the guest planted in /wr-io."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.engine.scratch import GuestFileError, Slot, take_guest_file, write_host_file


def test_usage_counts_stdout_apart_from_wr_io_and_stderr(tmp_path: Path) -> None:
    slot = Slot(tmp_path / "slot")
    slot.stdout.write_bytes(b"o" * 10)
    slot.stderr.write_bytes(b"e" * 5)
    (slot.io / "a").write_bytes(b"a" * 100)
    (slot.io / "d" / "e").mkdir(parents=True)
    (slot.io / "d" / "e" / "b").write_bytes(b"b" * 1000)
    (slot.io / "link").symlink_to("/etc/hostname")  # counted as a link, not its target
    used = slot.usage(10_000, 100)
    assert (used.stdout, used.entries) == (10, 5)
    assert used.other == 5 + 100 + 1000 + len("/etc/hostname")
    slot.reset()
    assert list(slot.io.iterdir()) == []


def test_usage_stops_walking_once_over(tmp_path: Path) -> None:
    slot = Slot(tmp_path / "slot")
    for i in range(50):
        (slot.io / f"f{i}").write_bytes(b"")
    assert slot.usage(10_000, 10).entries == 11  # stopped at the first entry past the cap


def test_take_guest_file_reads_removes_and_limits(tmp_path: Path) -> None:
    path = tmp_path / "body"
    path.write_bytes(b"x" * 10)
    assert take_guest_file(path, 10) == b"x" * 10
    assert not path.exists()
    path.write_bytes(b"x" * 11)
    with pytest.raises(GuestFileError, match="holds 11 bytes, over the module's limit of 10"):
        take_guest_file(path, 10)
    (tmp_path / "dir").mkdir()
    with pytest.raises(GuestFileError, match="is not a plain file"):
        take_guest_file(tmp_path / "dir", 10)


def test_write_host_file_never_writes_through_a_planted_link(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep")
    (tmp_path / "reply").symlink_to(victim)
    with pytest.raises(GuestFileError, match="cannot be created"):
        write_host_file(tmp_path / "reply", b"overwritten")
    assert victim.read_bytes() == b"keep"
    write_host_file(tmp_path / "fresh", b"data")
    assert (tmp_path / "fresh").read_bytes() == b"data"
