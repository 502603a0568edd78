"""An S3-compatible server for the test session: moto in server mode on a loopback port."""

from __future__ import annotations

import importlib.util
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.infra import policy
from tests.infra.process import ManagedProcess, free_port

HOST = "127.0.0.1"
READY_DEADLINE_S = 30.0
INSTALL_HINT = "run `bash scripts/bootstrap.sh` (the dev extra holds moto[server])"


@dataclass(frozen=True)
class S3Server:
    """Where the server listens, the credentials it accepts, and a bucket made for the run."""

    endpoint_url: str
    access_key_id: str
    secret_access_key: str
    region: str
    bucket: str

    def client(self) -> Any:
        """A boto3 S3 client for this server (path-style addressing, no retries)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            region_name=self.region,
            config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )

    def env(self) -> dict[str, str]:
        """The standard AWS variables pointing a child process at this server."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key_id,
            "AWS_SECRET_ACCESS_KEY": self.secret_access_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_ENDPOINT_URL_S3": self.endpoint_url,
        }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """moto_server on a free loopback port with one bucket; stopped at the end of the session."""
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("boto3") is None:
        policy.unavailable("moto[server] and boto3", INSTALL_HINT)
    port = free_port(HOST)
    log = Path(tempfile.mkdtemp(prefix="wrtest-s3-")) / "moto.log"
    server = ManagedProcess(
        [sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(port)],
        log,
        name="moto_server",
    )
    try:
        server.start().wait_ready(f"http://{HOST}:{port}/moto-api/", READY_DEADLINE_S)
        s3 = S3Server(
            endpoint_url=f"http://{HOST}:{port}",
            access_key_id="wrtest-access",
            secret_access_key="wrtest-secret",
            region="us-east-1",
            bucket="wruntime-test",
        )
        s3.client().create_bucket(Bucket=s3.bucket)
        yield s3
    finally:
        server.stop()
        log.unlink(missing_ok=True)
        log.parent.rmdir()
