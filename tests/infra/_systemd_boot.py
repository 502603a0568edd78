"""The two shell scripts that boot a fake systemd host, isolated from this machine.

boot.sh runs in the root namespace: it joins the host's own cgroups, then enters the host's
network namespace and unshares PID, mount, UTS, IPC and cgroup namespaces. init.sh runs there
as PID 1: it puts the host's private dirs, a read-only view of the machine's root and fresh
/run, /dev, /tmp and /var/tmp in place, refuses to go on unless all of that holds, and execs
systemd. systemd booted against the machine's own root once wiped the whole /tmp and started
the distro's services (reference/test-infra.md), hence every step below.
"""

from __future__ import annotations

import shlex
from pathlib import Path

# Remote path -> subdir (or file) of the host's root dir bound over it.
PRIVATE_DIRS = {
    "/opt": "opt",
    "/home/deploy": "home",
    "/root": "root-home",  # root's HOME (pip caches, ...) as on a real host
    "/etc/systemd/system": "etc-systemd-system",
    "/etc/ssh": "etc-ssh",
    "/etc/hostname": "hostname",
    "/var/lib": "var-lib",
    "/var/log": "var-log",  # holds the host's persistent journal, /var/log/journal
    "/etc/hosts": "hosts",
    # Last, so the dirs above win in SystemdHost.host_path(): /etc is an overlay of this
    # machine's /etc, and whatever the host writes there lands in `etc-upper`.
    "/etc": "etc-upper",
}
ETC_OVERLAY_WORKDIR = "etc-work"

# Masked (linked to /dev/null in /run/systemd/system.control, which outranks every other
# unit dir). The first group is the recipe's list; the second keeps the host's systemd from
# changing kernel state that is shared with this machine (sysctls, binfmt_misc, modules) or
# editing /etc/passwd.
MASKED_UNITS = (
    "systemd-tmpfiles-setup.service",
    "systemd-tmpfiles-clean.service",
    "systemd-tmpfiles-clean.timer",
    "getty.target",
    "getty@.service",
    "serial-getty@.service",
    "console-getty.service",
    "postgresql.service",
    "postgresql@.service",
    "docker.service",
    "docker.socket",
    "containerd.service",
    "apt-daily.service",
    "apt-daily.timer",
    "apt-daily-upgrade.service",
    "apt-daily-upgrade.timer",
    "man-db.timer",
    "e2scrub_all.timer",
    "fstrim.timer",
    # Beyond the recipe:
    "systemd-sysctl.service",
    "systemd-binfmt.service",
    "proc-sys-fs-binfmt_misc.automount",
    "proc-sys-fs-binfmt_misc.mount",
    "systemd-modules-load.service",
    "systemd-sysusers.service",
    "systemd-remount-fs.service",  # a remount without `bind` changes the shared superblock
)

# Device nodes of the host's private /dev: name -> (major, minor).
DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9)}
DEVICES_TTY = {"tty": (5, 0)}

# Exit code of init.sh when isolation does not hold (systemd is then never started).
NOT_ISOLATED = 70


def boot_script(cgroup_join: str, namespace: str, init_script: Path) -> str:
    unshare = [
        "unshare",
        "--pid",
        "--fork",
        "--kill-child=SIGKILL",  # if this process dies, the host's whole PID namespace dies
        "--mount",
        "--uts",
        "--ipc",
        "--cgroup",
        "--mount-proc",
        "--propagation",
        "private",
        "/bin/sh",
        str(init_script),
    ]
    return "\n".join(
        [
            "set -eu",
            cgroup_join,
            f"exec ip netns exec {shlex.quote(namespace)} {shlex.join(unshare)}",
            "",
        ]
    )


def init_script(host_dir: Path, hostname: str) -> str:
    lines = [
        "set -eu",
        *_private_dirs(host_dir),
        "# 2. The rest of the machine is read-only in here.",
        "mount -o remount,bind,ro /",
        "# 3. A fresh /run holding the masks.",
        "mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run",
        "mkdir -p /run/systemd/system.control",
        f"for unit in {' '.join(map(shlex.quote, MASKED_UNITS))}; do",
        "  ln -s /dev/null /run/systemd/system.control/$unit",
        "done",
        *_private_dev(host_dir),
        "# 5. Fresh /tmp and /var/tmp, last: they hide host_dir.",
        "mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp",
        "mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp",
        *_isolation_checks(),
        f"hostname {shlex.quote(hostname)}",
        "exec env -i container=wruntime-test"
        " /lib/systemd/systemd --system --unit=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def _private_dirs(host_dir: Path) -> list[str]:
    overlay = (
        f"lowerdir=/etc,upperdir={host_dir / PRIVATE_DIRS['/etc']},"
        f"workdir={host_dir / ETC_OVERLAY_WORKDIR}"
    )
    return [
        "# 1. The host's own dirs over the machine's (host_dir is under the real /tmp, so first):",
        "# a writable overlay of /etc, then private dirs (some of them on top of that overlay).",
        f"mount -t overlay overlay -o {shlex.quote(overlay)} /etc",
        *(
            f"mount --bind {shlex.quote(str(host_dir / sub))} {shlex.quote(remote)}"
            for remote, sub in PRIVATE_DIRS.items()
            if remote != "/etc"
        ),
    ]


def _private_dev(host_dir: Path) -> list[str]:
    devices = {**DEVICES, **DEVICES_TTY}.items()
    return [
        "# 4. A private /dev: no real consoles, no /dev/log or /dev/kmsg of the machine.",
        "mount -t tmpfs -o mode=755,nosuid tmpfs /dev",
        *(f"mknod -m 666 /dev/{name} c {major} {minor}" for name, (major, minor) in devices),
        "mkdir /dev/pts /dev/shm",
        "mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts",
        "ln -s pts/ptmx /dev/ptmx",
        "mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm",
        "ln -s /proc/self/fd /dev/fd",
        "for i in 0:stdin 1:stdout 2:stderr; do ln -s /proc/self/fd/${i%%:*} /dev/${i#*:}; done",
        "touch /dev/console",
        f"mount --bind {shlex.quote(str(host_dir / 'console.log'))} /dev/console",
    ]


def _isolation_checks() -> list[str]:
    must_be_mounts = " ".join(["/run", "/dev", "/tmp", "/var/tmp", *PRIVATE_DIRS])
    return [
        "# 6. Boot only if all of that holds.",
        f"for dir in {must_be_mounts}; do",
        '  if ! mountpoint -q "$dir"; then',
        f'    echo "$dir is not private: not booting" >&2; exit {NOT_ISOLATED}',
        "  fi",
        "done",
        "if touch /usr/.wrtest-write-probe 2>/dev/null; then",
        "  rm -f /usr/.wrtest-write-probe",
        f'  echo "/ is writable: not booting" >&2; exit {NOT_ISOLATED}',
        "fi",
    ]
