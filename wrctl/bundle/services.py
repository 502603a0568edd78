"""The programs of a target and their service files in every format: supervisor programs,
systemd units (+ the target's .target), and the Docker image + compose file."""

from __future__ import annotations

from dataclasses import dataclass, field

from wrctl.escaping import quote
from wrctl.templates import render

DEFAULT_BASE_IMAGE = "python:3.11-slim-bookworm"
SECRETS_KEY_ENV = "WR_SECRETS_KEY"


@dataclass(frozen=True)
class Program:
    """One long-running service: `argv` with @BIN@/@CURRENT@ placeholders."""

    name: str
    role: str  # manager | proxy | engine
    argv: list[str]
    priority: int
    needs_secrets_key: bool = False  # the manager reads WR_SECRETS_KEY
    env: dict[str, str] = field(default_factory=dict)
    after: list[str] = field(default_factory=list)  # programs to start after (systemd)

    def key_file(self, target: str) -> str:
        return f"@WORKDIR@/{target}/data/secrets.key"

    def shell_command(self, target: str) -> str:
        """The command, reading the secrets key from its file first when it needs it."""
        command = " ".join(quote(a) for a in self.argv)
        if not self.needs_secrets_key:
            return command
        return f"{SECRETS_KEY_ENV}=$(cat {quote(self.key_file(target))}) exec {command}"

    def supervisor_command(self, target: str) -> str:
        """The command line supervisord splits (as a shell would) into argv."""
        if not self.needs_secrets_key:
            return self.shell_command(target)
        return f"sh -c {quote(self.shell_command(target))}"

    def docker_command(self, target: str) -> list[str]:
        if not self.needs_secrets_key:
            return self.argv
        return ["sh", "-c", self.shell_command(target)]


@dataclass(frozen=True)
class ServiceContext:
    cluster: str
    target: str
    kind: str
    python: str
    base_image: str


def service_files(ctx: ServiceContext, programs: list[Program]) -> dict[str, bytes]:
    """supervisor/, systemd/, docker/ files and .dockerignore, keyed by bundle path."""
    supervisor_programs = [
        {
            "name": p.name,
            "command": p.supervisor_command(ctx.target),
            "priority": str(p.priority),
            "env": p.env,
        }
        for p in programs
    ]
    docker_programs = [
        {"name": p.name, "docker_command": p.docker_command(ctx.target), "env": p.env}
        for p in programs
    ]
    common = {"cluster": ctx.cluster, "target": ctx.target}
    files = {
        "supervisor/programs.conf": render(
            "supervisor-program.conf.j2", programs=supervisor_programs, **common
        ),
        "supervisor/supervisord.conf": render("supervisord.conf.j2"),
        f"systemd/wr-{ctx.target}.target": render("systemd-target.j2", programs=programs, **common),
        "docker/Dockerfile": render(
            "Dockerfile.j2", base_image=ctx.base_image, python=ctx.python, **common
        ),
        "docker/compose.yaml": render("compose.yaml.j2", programs=docker_programs, **common),
        ".dockerignore": render("dockerignore.j2"),
    }
    for program in programs:
        files[f"systemd/{program.name}.service"] = render(
            "systemd-service.j2", program=program, **common
        )
    return {name: text.encode() for name, text in files.items()}
