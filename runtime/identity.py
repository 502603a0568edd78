"""Who is calling the control plane: identities carried by certificates of the cluster CA,
and the mutual-TLS gRPC credentials built from them.

Every control-plane certificate names its holder in a URI subject alternative name,
`wruntime://<cluster>/<role>/<name>`: role `operator` (wrctl), `node` (a node's proxy and its
engines) or `manager`. Servers ask for a client certificate in the TLS handshake (no
certificate, no connection) and then read the caller's identity from it per call.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import grpc
from cryptography import x509

OPERATOR: Final = "operator"
NODE: Final = "node"
MANAGER: Final = "manager"
ROLES: Final = (OPERATOR, NODE, MANAGER)
SCHEME: Final = "wruntime"

# DNS name in every manager certificate. Clients verify the manager under this name whatever
# address they dial (an IP, a tunnel, WR_MANAGER), so only a manager certificate passes.
MANAGER_TLS_NAME: Final = "wr-manager"
# DNS name in every node certificate; engines verify their proxy's control port under it.
NODE_TLS_NAME: Final = "wr-node"


class Unauthenticated(Exception):
    """The caller presented no usable identity (gRPC UNAUTHENTICATED)."""


class PermissionDenied(Exception):
    """The caller is known but may not do this (gRPC PERMISSION_DENIED)."""


class TlsMaterialError(Exception):
    """A certificate, key or CA file cannot be read."""


@dataclass(frozen=True)
class Identity:
    cluster: str
    role: str
    name: str

    @property
    def uri(self) -> str:
        return identity_uri(self.cluster, self.role, self.name)

    def __str__(self) -> str:
        return f"{self.role} {self.name!r} of cluster {self.cluster!r}"


def identity_uri(cluster: str, role: str, name: str) -> str:
    if role not in ROLES:
        raise ValueError(f"role: expected one of {', '.join(ROLES)}, got {role!r}")
    return f"{SCHEME}://{cluster}/{role}/{name}"


def parse_identity_uri(uri: str) -> Identity | None:
    prefix = f"{SCHEME}://"
    if not uri.startswith(prefix):
        return None
    parts = uri[len(prefix) :].split("/")
    if len(parts) != 3 or not all(parts) or parts[1] not in ROLES:
        return None
    return Identity(*parts)


def identity_of(cert: x509.Certificate) -> Identity | None:
    """The one wruntime identity a certificate carries; None for none or more than one."""
    try:
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    found = [
        i
        for i in (
            parse_identity_uri(u) for u in names.get_values_for_type(x509.UniformResourceIdentifier)
        )
        if i is not None
    ]
    return found[0] if len(found) == 1 else None


@functools.lru_cache(maxsize=1024)
def _identity_of_pem(pem: bytes) -> Identity | None:
    # Parsing costs ~50 µs; a peer keeps its certificate for the life of its connection.
    try:
        return identity_of(x509.load_pem_x509_certificate(pem))
    except ValueError:
        return None


def caller(context: Any) -> Identity | None:
    """The identity in the client certificate of this call (a grpc or grpc.aio context)."""
    pems = context.auth_context().get("x509_pem_cert")
    return _identity_of_pem(pems[0]) if pems else None


@functools.lru_cache(maxsize=1024)
def _hosts_of_pem(pem: bytes) -> frozenset[str]:
    try:
        cert = x509.load_pem_x509_certificate(pem)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return frozenset()
    dns = {n.lower() for n in names.get_values_for_type(x509.DNSName)}
    # The TLS names are how clients verify a role, not places a peer can be reached at.
    dns -= {MANAGER_TLS_NAME, NODE_TLS_NAME}
    ips = {str(ip) for ip in names.get_values_for_type(x509.IPAddress)}
    return frozenset(dns | ips)


def caller_hosts(context: Any) -> frozenset[str]:
    """The host names and IPs (as text, IPv6 unbracketed) in the caller's certificate SANs."""
    pems = context.auth_context().get("x509_pem_cert")
    return _hosts_of_pem(pems[0]) if pems else frozenset()


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def authorize(context: Any, cluster: str, roles: frozenset[str], what: str) -> Identity:
    """The caller's identity when it has one of `roles` in `cluster` ("" accepts any cluster);
    Unauthenticated or PermissionDenied, naming `what` was refused and why, otherwise."""
    who = caller(context)
    if who is None:
        raise Unauthenticated(
            f"{what}: the client certificate carries no wruntime identity"
            f" (a {SCHEME}://<cluster>/<role>/<name> URI issued by the cluster CA)"
        )
    if cluster and who.cluster != cluster:
        raise PermissionDenied(f"{what}: {who} is not a member of cluster {cluster!r}")
    if who.role not in roles:
        allowed = " or ".join(sorted(roles))
        raise PermissionDenied(f"{what}: refused to {who}; only the {allowed} role may call it")
    return who


@dataclass(frozen=True)
class TlsFiles:
    """A certificate, its key and the cluster CA certificate, as PEM files."""

    cert_path: Path
    key_path: Path
    ca_cert_path: Path

    def read(self) -> tuple[bytes, bytes, bytes]:
        """(cert, key, ca) bytes; TlsMaterialError naming the file that cannot be read."""
        out = []
        for label, path in (
            ("certificate", self.cert_path),
            ("key", self.key_path),
            ("CA certificate", self.ca_cert_path),
        ):
            try:
                out.append(Path(path).read_bytes())
            except OSError as exc:
                raise TlsMaterialError(f"{path}: cannot read the {label}: {exc.strerror}") from None
        return out[0], out[1], out[2]

    def identity(self) -> Identity | None:
        cert, _, _ = self.read()
        return _identity_of_pem(cert)


def server_credentials(files: TlsFiles) -> grpc.ServerCredentials:
    """TLS that requires a client certificate signed by the cluster CA.

    grpc can only require a client certificate or not ask for one, so a caller without one is
    refused in the handshake, before any RPC runs."""
    cert, key, ca = files.read()
    return grpc.ssl_server_credentials(
        [(key, cert)], root_certificates=ca, require_client_auth=True
    )


def channel_credentials(files: TlsFiles) -> grpc.ChannelCredentials:
    cert, key, ca = files.read()
    return grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )


def channel_options(server_name: str) -> list[tuple[str, Any]]:
    """Verify the server under `server_name`, not the dialled host (see MANAGER_TLS_NAME)."""
    return [("grpc.ssl_target_name_override", server_name), ("grpc.default_authority", server_name)]


def aio_channel(target: str, files: TlsFiles, server_name: str) -> grpc.aio.Channel:
    return grpc.aio.secure_channel(target, channel_credentials(files), channel_options(server_name))


def sync_channel(target: str, files: TlsFiles, server_name: str) -> grpc.Channel:
    return grpc.secure_channel(target, channel_credentials(files), channel_options(server_name))
