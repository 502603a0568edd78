"""The cluster's certificate authority: every control-plane and peer identity (mutual TLS).

wrctl keeps the CA next to cluster.toml in `.wrctl/<cluster>/pki/` (keys readable by their
owner only) and issues three kinds of certificate, each naming its holder in a URI SAN
(runtime.identity): `node-<name>` (a node's proxy and engines, for its host address),
`manager` (for the manager's addresses and the name `wr-manager`) and `operator` (wrctl).
Keys never go into a bundle: apply copies a target's certificate, key and the CA certificate
to the host separately. A copy of the directory without `ca.key` can use its certificates
but not issue new ones (a second operator's setup).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from runtime.identity import MANAGER, MANAGER_TLS_NAME, NODE, NODE_TLS_NAME, OPERATOR, identity_uri
from wrctl.errors import WrctlError
from wrctl.fsutil import write_atomic

CA_DAYS = 3650
NODE_DAYS = 365
LEAF_DAYS = {NODE: NODE_DAYS, MANAGER: NODE_DAYS, OPERATOR: NODE_DAYS}
RENEW_BEFORE = datetime.timedelta(days=30)


class PkiError(WrctlError):
    """The cluster CA cannot be read or used."""


@dataclass(frozen=True)
class Credentials:
    """A certificate, its key and the CA certificate; `stem` names the files on a host."""

    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes
    stem: str = "node"

    def files(self) -> dict[str, bytes]:
        """File name -> content, as the configs expect them in the target's tls/ dir."""
        return {
            f"{self.stem}.crt": self.cert_pem,
            f"{self.stem}.key": self.key_pem,
            "ca.crt": self.ca_pem,
        }

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_pem)

    @property
    def fingerprint(self) -> str:
        """ "sha256:<hex>" of the certificate (what plan compares to see a rotation)."""
        return "sha256:" + self.certificate.fingerprint(hashes.SHA256()).hex()


NodeCredentials = Credentials  # the name apply and the tests used first


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ClusterCA:
    """Load the CA from `directory`, creating it on first use (when neither file exists)."""

    def __init__(self, directory: Path, cluster: str) -> None:
        self.directory = directory
        self.cluster = cluster
        self.key: ec.EllipticCurvePrivateKey | None
        key_path, cert_path = directory / "ca.key", directory / "ca.crt"
        if cert_path.exists():
            try:
                self.cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
                key = (
                    serialization.load_pem_private_key(key_path.read_bytes(), password=None)
                    if key_path.exists()
                    else None
                )
            except (OSError, ValueError) as exc:
                raise PkiError(f"{directory}: cannot load the cluster CA: {exc}") from None
            if key is not None and not isinstance(key, ec.EllipticCurvePrivateKey):
                raise PkiError(f"{key_path}: expected an EC private key")
            self.key = key
            return
        if key_path.exists():
            raise PkiError(f"{key_path}: the CA key is there but not ca.crt; restore ca.crt")
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"wruntime cluster {cluster} CA"))
            .issuer_name(_name(f"wruntime cluster {cluster} CA"))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .sign(key, hashes.SHA256())
        )
        write_atomic(key_path, _key_pem(key), mode=0o600)
        write_atomic(cert_path, self.cert.public_bytes(serialization.Encoding.PEM))
        self.key = key

    @property
    def ca_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def can_issue(self) -> bool:
        return self.key is not None

    # ── the three kinds of certificate ──────────────────────────────────

    def node_credentials(self, node: str, host: str) -> Credentials:
        """The node's certificate and key, reissued when missing, for another host, from
        another CA, or within 30 days of expiry."""
        names = node_names(self.cluster, node, host)
        return self._leaf(f"node-{node}", node, names, NODE, "node")

    def node_fingerprint(self, node: str, host: str) -> str | None:
        """The fingerprint of the node's certificate on file when node_credentials would keep
        it (None: it would issue a new one). Reads only; for plan's `tls` attribute."""
        cert_path, key_path = self.paths(f"node-{node}")
        if not (cert_path.exists() and key_path.exists()):
            return None
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        except ValueError:
            return None
        if not self._still_good(cert, node_names(self.cluster, node, host)):
            return None
        return "sha256:" + cert.fingerprint(hashes.SHA256()).hex()

    def manager_credentials(self, hosts: list[str]) -> Credentials:
        """The manager's server (and client) certificate, valid for `hosts` and wr-manager."""
        names = manager_names(self.cluster, hosts)
        return self._leaf("manager", "wr-manager", names, MANAGER, "manager")

    def operator_credentials(self, name: str, *, file_stem: str = "operator") -> Credentials:
        """An operator's client certificate (wrctl), kept as `<file_stem>.crt/.key`."""
        names: list[x509.GeneralName] = [
            x509.UniformResourceIdentifier(identity_uri(self.cluster, OPERATOR, name))
        ]
        return self._leaf(file_stem, name, names, OPERATOR, "operator")

    def issue(
        self, common_name: str, names: list[x509.GeneralName], role: str
    ) -> tuple[bytes, bytes]:
        """A new key and a certificate for it (PEM), signed by this CA."""
        if self.key is None:
            raise PkiError(
                f"{self.directory}: this copy of the cluster CA has no ca.key, so it cannot"
                " issue certificates; ask the CA holder (`wrctl cert issue`)"
            )
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if role != OPERATOR:
            usages.insert(0, ExtendedKeyUsageOID.SERVER_AUTH)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS[role]))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)

    def paths(self, stem: str) -> tuple[Path, Path]:
        return self.directory / f"{stem}.crt", self.directory / f"{stem}.key"

    def _leaf(
        self, stem: str, common_name: str, names: list[x509.GeneralName], role: str, file_stem: str
    ) -> Credentials:
        cert_path, key_path = self.paths(stem)
        if cert_path.exists() and key_path.exists():
            cert_pem, key_pem = cert_path.read_bytes(), key_path.read_bytes()
            if self._still_good(x509.load_pem_x509_certificate(cert_pem), names):
                return Credentials(cert_pem, key_pem, self.ca_pem, file_stem)
        cert_pem, key_pem = self.issue(common_name, names, role)
        write_atomic(key_path, key_pem, mode=0o600)
        write_atomic(cert_path, cert_pem)
        return Credentials(cert_pem, key_pem, self.ca_pem, file_stem)

    def _still_good(self, cert: x509.Certificate, names: list[x509.GeneralName]) -> bool:
        if cert.issuer != self.cert.subject or cert.not_valid_after_utc - _now() < RENEW_BEFORE:
            return False
        try:
            cert.verify_directly_issued_by(self.cert)
            have = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
            return False
        return set(have) == set(names)


def _host_names(hosts: list[str]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in dict.fromkeys(hosts):
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


def manager_names(cluster: str, hosts: list[str]) -> list[x509.GeneralName]:
    """wr-manager (what clients verify), its identity, and the addresses it is dialled at."""
    return [
        x509.DNSName(MANAGER_TLS_NAME),
        x509.UniformResourceIdentifier(identity_uri(cluster, MANAGER, "manager")),
        *_host_names(["localhost", "127.0.0.1", *hosts]),
    ]


def node_names(cluster: str, node: str, host: str) -> list[x509.GeneralName]:
    """The node's address as peers dial it, loopback for a node on this machine, the name
    engines verify its control port under, and its identity."""
    return [
        x509.DNSName(node),
        x509.DNSName(NODE_TLS_NAME),
        x509.UniformResourceIdentifier(identity_uri(cluster, NODE, node)),
        *_host_names(["localhost", host, "127.0.0.1"]),
    ]


def cluster_ca(cluster_file: Path, cluster: str) -> ClusterCA:
    """The CA of the cluster described by cluster_file (created on first use)."""
    directory = pki_dir(cluster_file, cluster)
    ca = ClusterCA(directory, cluster)
    key = directory / "ca.key"
    if os.name == "posix" and key.exists() and key.stat().st_mode & 0o077:
        raise PkiError(f"{key}: readable by others; chmod 600 it (it signs every node)")
    return ca


def pki_dir(cluster_file: Path, cluster: str) -> Path:
    return cluster_file.resolve().parent / ".wrctl" / cluster / "pki"
