"""A cluster CA for tests (fixture `pki`): control-plane credentials for every role.

Made once per test session (per xdist worker) with wrctl's own CA code, so the certificates
are the ones a deploy would ship. Cluster name: `test`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509

from runtime.identity import (
    MANAGER_TLS_NAME,
    NODE_TLS_NAME,
    TlsFiles,
    aio_channel,
    identity_of,
    sync_channel,
)
from wrctl.pki import ClusterCA, Credentials

CLUSTER = "test"


@dataclass
class ClusterPki:
    ca: ClusterCA
    directory: Path

    def _write(self, label: str, credentials: Credentials) -> TlsFiles:
        out = self.directory / label
        out.mkdir(exist_ok=True, mode=0o700)
        for name, data in credentials.files().items():
            (out / name).write_bytes(data)
            (out / name).chmod(0o600)
        stem = credentials.stem
        return TlsFiles(out / f"{stem}.crt", out / f"{stem}.key", out / "ca.crt")

    def operator(self, name: str = "tester") -> TlsFiles:
        return self._write(
            f"operator-{name}", self.ca.operator_credentials(name, file_stem=f"operator-{name}")
        )

    def node(self, name: str = "node-1", host: str = "127.0.0.1") -> TlsFiles:
        return self._write(f"node-{name}", self.ca.node_credentials(name, host))

    def renewed(self, files: TlsFiles) -> tuple[bytes, bytes]:
        """A new (cert, key) PEM pair with the same names as the certificate in `files`
        (a rotation: new key, new serial, same identity)."""
        cert = x509.load_pem_x509_certificate(files.cert_path.read_bytes())
        names = list(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
        role = identity_of(cert)
        assert role is not None, f"{files.cert_path} carries no wruntime identity"
        common_name = cert.subject.rfc4514_string().removeprefix("CN=")
        return self.ca.issue(common_name, names, role.role)

    def manager(self, hosts: tuple[str, ...] = ()) -> TlsFiles:
        return self._write("manager", self.ca.manager_credentials(list(hosts)))

    # ── channels ─────────────────────────────────────────────────────────

    def operator_channel(self, address: str, name: str = "tester") -> grpc.Channel:
        return sync_channel(address, self.operator(name), MANAGER_TLS_NAME)

    def operator_aio_channel(self, address: str, name: str = "tester") -> grpc.aio.Channel:
        return aio_channel(address, self.operator(name), MANAGER_TLS_NAME)

    def node_aio_channel(self, address: str, node: str = "node-1") -> grpc.aio.Channel:
        return aio_channel(address, self.node(node), MANAGER_TLS_NAME)

    def control_channel(self, address: str, node: str = "node-1") -> grpc.Channel:
        """A channel to a proxy's control port, as an engine of `node` opens it."""
        return sync_channel(address, self.node(node), NODE_TLS_NAME)

    def manager_config_tls(self) -> dict[str, Any]:
        """The [tls] table of a manager.toml / ManagerConfig for this CA's manager."""
        files = self.manager()
        return {
            "cert_path": str(files.cert_path),
            "key_path": str(files.key_path),
            "ca_cert_path": str(files.ca_cert_path),
        }


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterPki]:
    directory = tmp_path_factory.mktemp("pki")
    yield ClusterPki(ClusterCA(directory / "ca", CLUSTER), directory)
