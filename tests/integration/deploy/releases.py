"""Hand-made release dirs on a fake host, laid out like the bundle contract says (for format
tests that need no real bundle), and small HTTP probes."""

from __future__ import annotations

import base64
import urllib.request

from tests.infra.process import wait_until
from wrctl.deploy.formats import ServiceFormat
from wrctl.deploy.rollout import Rollout, TargetHost
from wrctl.deploy.transport import Transport, quote


def prepare_workdir(transport: Transport, workdir: str) -> None:
    """A workdir the deploy user owns (made with sudo, as a deploy to /opt does)."""
    transport.run(
        f"rm -rf {quote(workdir)} && mkdir -p {quote(workdir)} && "
        f"chown $SUDO_USER: {quote(workdir)}",
        sudo=True,
    )


def write_files(transport: Transport, root: str, files: dict[str, str]) -> None:
    """Write `files` (path relative to root -> text) under root on the host."""
    lines = [f"mkdir -p {quote(root)}"]
    for rel, text in files.items():
        path = f"{root}/{rel}"
        encoded = base64.b64encode(text.encode()).decode()
        lines.append(
            f"mkdir -p $(dirname {quote(path)}) && echo {encoded} | base64 -d > {quote(path)}"
        )
    transport.run(" && ".join(lines))


def write_release(
    transport: Transport, workdir: str, target: str, release: str, files: dict[str, str]
) -> str:
    """Write `files` into WORKDIR/TARGET/releases/<release>/."""
    root = f"{workdir}/{target}/releases/{release}"
    write_files(transport, root, files)
    return root


def rollout_for(transport: Transport, workdir: str, fmt: ServiceFormat, target: str) -> Rollout:
    return Rollout(TargetHost(transport, workdir, fmt, ""), target)


def http_get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.read().decode()


def wait_for_body(url: str, expected: str, deadline_s: float = 20.0) -> None:
    def answered() -> bool:
        return http_get(url).strip() == expected

    wait_until(answered, deadline_s, f"{url} to answer {expected!r}")


def wait_down(url: str, deadline_s: float = 20.0) -> None:
    def refused() -> bool:
        try:
            http_get(url)
        except OSError:
            return True
        return False

    wait_until(refused, deadline_s, f"{url} to stop answering")
