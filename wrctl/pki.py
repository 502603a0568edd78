"""The cluster's certificate authority for the proxies' peer links (mutual TLS).

wrctl keeps the CA next to cluster.toml in `.wrctl/<cluster>/pki/` (the key readable by its
owner only) and issues each node a certificate for its host address. Keys never go into a
bundle: apply copies a node's certificate, key and the CA certificate to the node separately.
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

from wrctl.errors import WrctlError
from wrctl.fsutil import write_atomic

CA_DAYS = 3650
NODE_DAYS = 365
RENEW_BEFORE = datetime.timedelta(days=30)


class PkiError(WrctlError):
    """The cluster CA cannot be read or used."""


@dataclass(frozen=True)
class NodeCredentials:
    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes

    def files(self) -> dict[str, bytes]:
        """File name -> content, as the proxy config expects them in the node's tls/ dir."""
        return {"node.crt": self.cert_pem, "node.key": self.key_pem, "ca.crt": self.ca_pem}


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ClusterCA:
    """Load the CA from `directory`, creating it on first use."""

    def __init__(self, directory: Path, cluster: str) -> None:
        self.directory = directory
        self.cluster = cluster
        key_path, cert_path = directory / "ca.key", directory / "ca.crt"
        if key_path.exists() and cert_path.exists():
            try:
                key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
                self.cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            except (OSError, ValueError) as exc:
                raise PkiError(f"{directory}: cannot load the cluster CA: {exc}") from None
            if not isinstance(key, ec.EllipticCurvePrivateKey):
                raise PkiError(f"{key_path}: expected an EC private key")
            self.key = key
            return
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"wruntime cluster {cluster} CA"))
            .issuer_name(_name(f"wruntime cluster {cluster} CA"))
            .public_key(self.key.public_key())
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
            .sign(self.key, hashes.SHA256())
        )
        write_atomic(key_path, _key_pem(self.key), mode=0o600)
        write_atomic(cert_path, self.cert.public_bytes(serialization.Encoding.PEM))

    @property
    def ca_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def node_credentials(self, node: str, host: str) -> NodeCredentials:
        """The node's certificate and key, reissued when missing, for another host, from
        another CA, or within 30 days of expiry."""
        cert_path = self.directory / f"node-{node}.crt"
        key_path = self.directory / f"node-{node}.key"
        if cert_path.exists() and key_path.exists():
            cert_pem, key_pem = cert_path.read_bytes(), key_path.read_bytes()
            if self._still_good(x509.load_pem_x509_certificate(cert_pem), host):
                return NodeCredentials(cert_pem, key_pem, self.ca_pem)
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(node))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=NODE_DAYS))
            .add_extension(x509.SubjectAlternativeName(_alt_names(node, host)), critical=False)
            .add_extension(
                x509.ExtendedKeyUsage(
                    [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_pem, key_pem = cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)
        write_atomic(key_path, key_pem, mode=0o600)
        write_atomic(cert_path, cert_pem)
        return NodeCredentials(cert_pem, key_pem, self.ca_pem)

    def _still_good(self, cert: x509.Certificate, host: str) -> bool:
        if cert.issuer != self.cert.subject or cert.not_valid_after_utc - _now() < RENEW_BEFORE:
            return False
        try:
            cert.verify_directly_issued_by(self.cert)
            names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except (InvalidSignature, ValueError, TypeError, x509.ExtensionNotFound):
            return False
        common_name = str(cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)
        return set(names) == set(_alt_names(common_name, host))


def _alt_names(node: str, host: str) -> list[x509.GeneralName]:
    """The node's address as peers dial it, plus loopback for a node on this machine."""
    names: list[x509.GeneralName] = [x509.DNSName(node), x509.DNSName("localhost")]
    loopback = ipaddress.ip_address("127.0.0.1")
    try:
        address = ipaddress.ip_address(host)
        names.append(x509.IPAddress(address))
    except ValueError:
        names.append(x509.DNSName(host))
        address = None
    if address != loopback:
        names.append(x509.IPAddress(loopback))
    return names


def cluster_ca(cluster_file: Path, cluster: str) -> ClusterCA:
    """The CA of the cluster described by cluster_file (created on first use)."""
    directory = cluster_file.resolve().parent / ".wrctl" / cluster / "pki"
    ca = ClusterCA(directory, cluster)
    if os.name == "posix" and (directory / "ca.key").stat().st_mode & 0o077:
        raise PkiError(
            f"{directory / 'ca.key'}: readable by others; chmod 600 it (it signs every node)"
        )
    return ca
