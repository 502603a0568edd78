"""The Docker format: the host builds the target's image from the current release dir, and
compose (v2 `docker compose` or v1 `docker-compose`) runs one container per program."""

from __future__ import annotations

from wrctl.deploy.formats import RemoteCommand, current_release, program_name, read_manifest
from wrctl.deploy.transport import Transport, quote
from wrctl.errors import WrctlError

BUILD_TIMEOUT_S = 1800.0
PROJECT_LABEL = "com.docker.compose.project"
_DETECT_COMPOSE = (
    "if docker compose version >/dev/null 2>&1; then echo 'docker compose'; "
    "elif command -v docker-compose >/dev/null 2>&1; then echo docker-compose; fi"
)


def project(target: str) -> str:
    return f"wr-{target}"


def image_name(cluster: str, target: str, release_hex: str) -> str:
    return f"wruntime-{cluster}-{target}:{release_hex[:12]}"


class DockerFormat:
    name = "docker"
    install_as_root = False

    def __init__(self, transport: Transport, workdir: str, base_image: str | None = None) -> None:
        self._t = transport
        self._workdir = workdir
        self._base_image = base_image or None
        self._compose: str | None = None

    def compose(self) -> str:
        """The compose command the host has (detected once)."""
        if self._compose is None:
            found = self._t.run(_DETECT_COMPOSE, check=False).stdout.strip()
            if not found:
                raise WrctlError(
                    f"{self._t.name}: neither `docker compose` (v2) nor `docker-compose` (v1) "
                    "is installed"
                )
            self._compose = found
        return self._compose

    def preflight(self) -> list[str]:
        if not self._t.run("docker --version", check=False).ok:  # missing or not runnable
            return ["docker CLI not found on the host (install docker.io or docker-ce)"]
        problems = []
        if not self._t.run(_DETECT_COMPOSE, check=False).stdout.strip():
            problems.append("neither `docker compose` (v2) nor `docker-compose` (v1) is installed")
        daemon = self._t.run("docker version --format '{{.Server.Version}}'", check=False)
        if not daemon.ok or not daemon.stdout.strip():
            why = (daemon.stderr.strip().splitlines() or ["no answer"])[-1]
            problems.append(
                f"the Docker daemon is not reachable ({why}); is dockerd running and may this "
                "user use it (group docker)?"
            )
        return problems

    def ensure_running(self) -> None:
        """The Docker daemon is the host's; nothing to start for the workdir."""

    def restart(self, target: str) -> None:
        """Build the current release's image unless the host has it, then (re)create the
        target's containers from the release's compose file."""
        release = current_release(self._t, self._workdir, target)
        cluster = read_manifest(self._t, release).get("cluster")
        if not isinstance(cluster, str) or not cluster:
            raise WrctlError(f"{self._t.name}: {release}/manifest.json names no cluster")
        image = quote(image_name(cluster, target, release.rsplit("/", 1)[-1]))
        base = f" --build-arg BASE_IMAGE={quote(self._base_image)}" if self._base_image else ""
        self._t.run(
            f"docker image inspect {image} >/dev/null 2>&1 || docker build -q -t {image} "
            f"-f {quote(release + '/docker/Dockerfile')}{base} {quote(release)}",
            timeout=BUILD_TIMEOUT_S,
        )
        compose_file = quote(f"{release}/etc/docker/compose.yaml")
        self._t.run(
            f"{self.compose()} -p {project(target)} -f {compose_file} "
            "up -d --force-recreate --remove-orphans"
        )

    def _containers(self, target: str, running_only: bool = False) -> str:
        flags = "-q" if running_only else "-aq"
        return f"docker ps {flags} --filter {quote(f'label={PROJECT_LABEL}={project(target)}')}"

    def stop(self, target: str) -> None:
        self._t.run(f"{self._containers(target, True)} | xargs -r docker stop >/dev/null")

    def remove(self, target: str) -> None:
        """Delete the target's containers, its images and its compose network (no compose
        file needed: `current` may already be gone)."""
        self._t.run(
            f"{self._containers(target)} | xargs -r docker rm -f >/dev/null; "
            f"docker image ls -q --filter {quote(f'reference=wruntime-*-{target}')} "
            "| sort -u | xargs -r docker rmi -f >/dev/null; "
            f"docker network rm {project(target)}_default >/dev/null 2>&1; true"
        )

    def forget_releases(self, target: str, releases: list[str]) -> None:
        """Delete the images built for pruned releases. `docker rmi` without -f: an image a
        container still uses stays (and is deleted with the target)."""
        if not releases:
            return
        cluster = read_manifest(self._t, current_release(self._t, self._workdir, target)).get(
            "cluster"
        )
        if not isinstance(cluster, str) or not cluster:
            return  # nothing names the images; `remove` still finds them by target
        images = " ".join(quote(image_name(cluster, target, r)) for r in releases)
        self._t.run(f"docker rmi {images} >/dev/null 2>&1; true", check=False)

    def shutdown_if_idle(self) -> bool:
        """True when no wruntime container is left on the daemon (nothing to stop)."""
        labels = self._t.run(
            f"docker ps -a --format '{{{{.Label \"{PROJECT_LABEL}\"}}}}'", check=False
        ).stdout.split()
        return not any(label.startswith("wr-") for label in labels)

    def log_tail(self, target: str, lines: int = 50) -> str:
        command = (
            f"for c in $({self._containers(target)}); do "
            "echo \"==> $(docker inspect --format '{{.Name}}' $c | tr -d /)\"; "
            f'docker logs --tail {int(lines)} "$c" 2>&1; done'
        )
        return self._t.run(command, check=False).stdout

    def logs_command(
        self, target: str, service: str | None, follow: bool, lines: int
    ) -> RemoteCommand:
        compose_file = quote(f"{self._workdir}/{target}/current/etc/docker/compose.yaml")
        flags = f"--no-color --tail={int(lines)}" + (" -f" if follow else "")
        only = f" {quote(program_name(target, service))}" if service else ""
        return RemoteCommand(
            f"{self.compose()} -p {project(target)} -f {compose_file} logs {flags}{only}"
        )
