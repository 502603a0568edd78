"""`wrctl cert`: show the cluster CA, issue certificates to hand out (a second operator, an
offline node or manager), rotate node certificates, and the expiry report `wrctl status`
prints. Issued keys are 0600 and existing files are never overwritten without force."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from runtime.identity import NODE, OPERATOR, identity_of, identity_uri
from wrctl.errors import WrctlError
from wrctl.fsutil import write_atomic
from wrctl.pki import ClusterCA, Credentials, PkiError, manager_names, node_names

WARN_DAYS = 30


@dataclass(frozen=True)
class CertInfo:
    """What `wrctl cert ca` and `wrctl status` show of one certificate."""

    label: str  # "CA", "manager", "operator alice", "node a"
    path: str
    subject: str
    identity: str  # its wruntime:// URI ("" for the CA)
    fingerprint: str
    not_after: datetime.datetime

    @property
    def days_left(self) -> int:
        return (self.not_after - datetime.datetime.now(datetime.UTC)).days

    @property
    def warning(self) -> str:
        days = self.days_left
        if days < 0:
            return f"expired {-days} days ago"
        return f"expires in {days} days" if days < WARN_DAYS else ""

    def to_json(self) -> dict[str, object]:
        return {
            "certificate": self.label,
            "path": self.path,
            "subject": self.subject,
            "identity": self.identity,
            "fingerprint": self.fingerprint,
            "not_after": self.not_after.isoformat(),
            "days_left": self.days_left,
            "warning": self.warning,
        }


def cert_info(label: str, path: Path) -> CertInfo:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise PkiError(f"{path}: cannot read the {label} certificate: {exc}") from None
    who = identity_of(cert)
    return CertInfo(
        label,
        str(path),
        cert.subject.rfc4514_string(),
        who.uri if who else "",
        "sha256:" + cert.fingerprint(hashes.SHA256()).hex(),
        cert.not_valid_after_utc,
    )


def certificate_report(
    ca_dir: Path | None, nodes: list[str], operator: Path | None
) -> list[CertInfo]:
    """The CA, the manager, the operator certificate in use and each node's, as far as
    they exist (a node not yet applied has none)."""
    found: list[CertInfo] = []
    if ca_dir is not None:
        for label, name in [("CA", "ca"), ("manager", "manager")]:
            if (ca_dir / f"{name}.crt").exists():
                found.append(cert_info(label, ca_dir / f"{name}.crt"))
    if operator is not None and operator.exists():
        info = cert_info("operator", operator)
        name = info.identity.rsplit("/", 1)[-1] if info.identity else ""
        found.append(cert_info(f"operator {name}".strip(), operator))
    if ca_dir is not None:
        for node in nodes:
            path = ca_dir / f"node-{node}.crt"
            if path.exists():
                found.append(cert_info(f"node {node}", path))
    return found


# ── issuing certificates to hand out ───────────────────────────────────────


def operator_for(ca: ClusterCA, name: str) -> Credentials:
    """A new operator certificate (not kept in the CA dir: its key belongs to its holder)."""
    _check_name("--operator", name)
    names: list[x509.GeneralName] = [
        x509.UniformResourceIdentifier(identity_uri(ca.cluster, OPERATOR, name))
    ]
    cert, key = ca.issue(name, names, OPERATOR)
    return Credentials(cert, key, ca.ca_pem, "operator")


def node_for(ca: ClusterCA, node: str, host: str) -> Credentials:
    """A node certificate for an offline install of node `node` at `host`."""
    _check_name("--node", node)
    cert, key = ca.issue(node, node_names(ca.cluster, node, host), NODE)
    return Credentials(cert, key, ca.ca_pem, "node")


def manager_for(ca: ClusterCA, hosts: list[str]) -> Credentials:
    """A manager certificate for an offline install, valid for `hosts` and wr-manager."""
    from runtime.identity import MANAGER

    cert, key = ca.issue("wr-manager", manager_names(ca.cluster, hosts), MANAGER)
    return Credentials(cert, key, ca.ca_pem, "manager")


def _check_name(option: str, name: str) -> None:
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name[0] in "-.":
        raise WrctlError(f"{option} {name!r}: expected a name of letters, digits, '-', '_', '.'")


def write_credentials(credentials: Credentials, out: Path, force: bool = False) -> list[Path]:
    """Write the three files into `out` (created 0700): the key 0600, certificates 0644.
    Refuses, writing nothing, when one exists and not `force`."""
    files = credentials.files()
    existing = [out / name for name in files if (out / name).exists()]
    if existing and not force:
        raise WrctlError(
            f"{', '.join(str(p) for p in existing)} already exist; pass --force to overwrite "
            "(the old key is lost) or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    written = []
    for name, data in sorted(files.items()):
        mode = 0o600 if name.endswith(".key") else 0o644
        write_atomic(out / name, data, mode=mode)
        os.chmod(out / name, mode)  # an existing file overwritten with --force keeps none
        written.append(out / name)
    return written


# ── rotation ──────────────────────────────────────────────────────────────


def rotate_nodes(ca: ClusterCA, nodes: dict[str, str]) -> tuple[Path | None, dict[str, str]]:
    """New certificates for `nodes` (name -> host as peers dial it). The previous pair of
    each goes to pki/archive/<UTC timestamp>/ first. Returns (archive dir or None, name ->
    new fingerprint)."""
    if not ca.can_issue:
        raise PkiError(
            f"{ca.directory}: this copy of the cluster CA has no ca.key, so it cannot issue "
            "node certificates; rotate on the CA holder's machine"
        )
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    archive = ca.directory / "archive" / stamp
    moved = False
    fingerprints = {}
    for node, host in sorted(nodes.items()):
        for path in ca.paths(f"node-{node}"):
            if path.exists():
                archive.mkdir(parents=True, exist_ok=True, mode=0o700)
                path.rename(archive / path.name)
                moved = True
        fingerprints[node] = ca.node_credentials(node, host).fingerprint
    return (archive if moved else None), fingerprints
