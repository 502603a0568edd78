#!/usr/bin/env bash
# reset-test-machine.sh [--yes]: undo, on this machine, everything the test suite installed or
# created outside a checkout, so the next `CI=true bash .ci/run` runs as on a machine that has
# never seen the suite. Removes:
#   - leftover test processes: everything in wrtest-* network namespaces and cgroups, and every
#     process started from a fixture dir (/tmp/wrtest-*, /tmp/pytest-of-*): sshd, dockerd and
#     its shims, PostgreSQL, the S3 server, supervisord and the wr-* services it ran;
#   - wrtest-* namespaces, wrb*/wrv* links, wrtest-* cgroups, the docker0 bridge (when no
#     dockerd is left), fixture mounts and dirs, /run/lock/wruntime-test-*.lock;
#   - the accounts and groups the fixtures created (recorded in /var/lib/wruntime-test) and
#     /etc/sudoers.d/deploy; the docker group when docker.io was the suite's install;
#   - the Debian packages the install scripts added (the package list saved before their first
#     install: scripts/apt-install.sh), with their data (/var/lib/docker, /etc/docker, ...);
#   - caches: $WRUNTIME_CACHE (default ~/.cache/wruntime: components, base image), uv's cache,
#     and uv itself when scripts/bootstrap.sh installed it with pip --user.
# It refuses to run while a pytest process is alive (it would kill that run's hosts).
# Needs root. A checkout's own .venv is left alone: use a fresh clone for the fresh run.
set -euo pipefail

STATE_DIR="${WRTEST_STATE_DIR:-/var/lib/wruntime-test}"
CACHE_DIR="${WRUNTIME_CACHE:-$HOME/.cache/wruntime}"

if [ "$(id -u)" -ne 0 ]; then
  echo "reset-test-machine.sh: run as root (it removes accounts, packages and namespaces)" >&2
  exit 1
fi
if [ "${1:-}" != "--yes" ]; then
  echo "This removes the test suite's users, packages, caches, namespaces and processes from"
  echo "this machine (see the header of $0). Run again with --yes to go ahead."
  exit 1
fi
if pgrep -f '(^|/)pytest( |$)|-m pytest' >/dev/null; then
  echo "reset-test-machine.sh: a pytest run is alive (pgrep -af pytest); wait for it or stop it" >&2
  exit 1
fi

say() { echo "==> $*"; }

kill_pids() {  # SIGKILL each pid given on stdin (already-dead ones are fine)
  xargs -r kill -KILL 2>/dev/null || true
}

say "stopping processes in test namespaces"
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^wrtest-' || true); do
  ip netns pids "$ns" 2>/dev/null | kill_pids
  ip netns delete "$ns" 2>/dev/null || true
done

say "stopping processes in test cgroups"
mapfile -t cgroups < <(find /sys/fs/cgroup -mindepth 1 -type d -name 'wrtest-*' 2>/dev/null | sort -r)
for cg in "${cgroups[@]}"; do
  [ -f "$cg/cgroup.procs" ] && kill_pids < "$cg/cgroup.procs"
done

say "stopping processes started from fixture dirs"
for pid in $(ls /proc | grep -E '^[0-9]+$'); do
  [ "$pid" = "$$" ] && continue
  cmd=$({ tr '\0' ' ' < "/proc/$pid/cmdline"; } 2>/dev/null || true)  # it may be gone
  cwd=$(readlink "/proc/$pid/cwd" 2>/dev/null || true)
  case "$cmd $cwd" in
    */tmp/wrtest-*|*/tmp/pytest-of-*) echo "$pid" ;;
  esac
done | kill_pids

for cg in "${cgroups[@]}"; do  # deepest first (sorted in reverse); empty once their tasks died
  for _ in 1 2 3 4 5; do rmdir "$cg" 2>/dev/null && break; sleep 0.2; done
done

say "removing fixture mounts, dirs and links"
for dir in /tmp/wrtest-* /tmp/pytest-of-*; do
  [ -e "$dir" ] || continue
  awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r point; do
    umount -l "$point" 2>/dev/null || true
  done
  rm -rf --one-file-system "$dir" 2>/dev/null || rm -rf "$dir"
done
for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 \
    | grep -E '^wr[bv][0-9]+[a-z]' || true); do
  ip link delete "$link" 2>/dev/null || true
done
if ! pgrep -x dockerd >/dev/null && ip link show docker0 >/dev/null 2>&1; then
  ip link delete docker0 2>/dev/null || true
fi
rm -f /run/lock/wruntime-test-*.lock

before="$STATE_DIR/dpkg-before.txt"
docker_was_ours=0
if [ -f "$before" ]; then
  grep -qx 'docker.io' "$before" || docker_was_ours=1
  mapfile -t added < <(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' \
    | awk '$1 == "ii" {print $2}' | sort | comm -23 - "$before")
  if [ ${#added[@]} -gt 0 ]; then
    say "purging the Debian packages the install scripts added: ${added[*]}"
    systemctl stop docker.socket docker containerd 2>/dev/null || true
    pkill -x dockerd 2>/dev/null || true
    pkill -x containerd 2>/dev/null || true
    # sudo's prerm refuses without SUDO_FORCE_REMOVE (root has no password on such images)
    DEBIAN_FRONTEND=noninteractive SUDO_FORCE_REMOVE=yes apt-get purge -y -qq "${added[@]}" \
      >/dev/null
  fi
  if [ "$docker_was_ours" = 1 ]; then
    rm -rf /var/lib/docker /var/lib/containerd /etc/docker /run/docker /run/containerd
  fi
fi

say "removing the accounts and groups the fixtures created"
for user in $(cat "$STATE_DIR/created-users" 2>/dev/null || true); do
  pkill -KILL -u "$user" 2>/dev/null || true
  if id -u "$user" >/dev/null 2>&1; then userdel -r "$user" 2>/dev/null || userdel "$user"; fi
  rm -f "/etc/sudoers.d/$user"
  rm -rf "/home/$user"
done
groups_to_remove=$(cat "$STATE_DIR/created-groups" 2>/dev/null || true)
[ "$docker_was_ours" = 1 ] && groups_to_remove="$groups_to_remove docker"
for group in $groups_to_remove; do
  if getent group "$group" >/dev/null; then groupdel "$group" 2>/dev/null || true; fi
done

say "removing caches"
rm -rf "$CACHE_DIR" "$HOME/.cache/uv"
if python3 -m pip show --quiet uv >/dev/null 2>&1 && [ -x "$HOME/.local/bin/uv" ]; then
  python3 -m pip uninstall --quiet -y uv 2>/dev/null \
    || python3 -m pip uninstall --quiet -y --break-system-packages uv
fi
python3 -m pip cache remove uv >/dev/null 2>&1 || true  # bootstrap's download of it

rm -rf "$STATE_DIR"
say "done: this machine is as the test suite found it"
