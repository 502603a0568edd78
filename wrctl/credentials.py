"""wrctl's operator credentials and the one place its control-plane channels are made.

Where the operator certificate comes from, first match wins:
1. `WR_CREDENTIALS=DIR`: operator.crt, operator.key and ca.crt, as `wrctl cert issue
   --operator NAME --out DIR` writes them (a second operator, a CI job);
2. the cluster's pki dir next to cluster.toml (`.wrctl/<cluster>/pki/`): operator.crt/.key,
   issued on first use for the local user when the CA key is there, so the quick start
   needs no step of its own.
Every channel verifies the manager under MANAGER_TLS_NAME, whatever address is dialled.
"""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.identity import MANAGER_TLS_NAME, TlsFiles, TlsMaterialError, channel_credentials
from wrctl.errors import WrctlError

if TYPE_CHECKING:
    import grpc

    from wrctl.config.model import ClusterConfig

CREDENTIALS_ENV = "WR_CREDENTIALS"
OPERATOR_STEM = "operator"


class CredentialsError(WrctlError):
    """Operator credentials are missing, unreadable, or the manager refused them."""


@dataclass(frozen=True)
class OperatorCredentials:
    """The operator's TLS files and where they were found (for error messages)."""

    files: TlsFiles
    source: str

    def describe(self) -> str:
        f = self.files
        return f"{f.cert_path}, {f.key_path} and CA {f.ca_cert_path} ({self.source})"


def operator_name(user: str | None = None) -> str:
    """The local user name as an identity name: lower case, [a-z0-9-] only."""
    raw = user if user is not None else _user()
    name = re.sub(r"[^a-z0-9-]+", "-", raw.lower()).strip("-")
    return name[:63] or "operator"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container's arbitrary uid)
        return "operator"


def files_in(directory: Path, stem: str = OPERATOR_STEM) -> TlsFiles:
    return TlsFiles(directory / f"{stem}.crt", directory / f"{stem}.key", directory / "ca.crt")


DEFAULT_CLUSTER_FILE = Path("cluster.toml")


def resolve_credentials(config: ClusterConfig | None) -> OperatorCredentials:
    """The operator credentials wrctl uses for the cluster of `config`. None (a command run
    without -c): WR_CREDENTIALS, else ./cluster.toml's CA as the other commands default to."""
    env = os.environ.get(CREDENTIALS_ENV, "")
    if env:
        directory = Path(env).expanduser()
        files = files_in(directory)
        missing = [p.name for p in (files.cert_path, files.key_path, files.ca_cert_path)]
        missing = [m for m in missing if not (directory / m).is_file()]
        if missing:
            raise CredentialsError(
                f"{CREDENTIALS_ENV}={env}: {', '.join(missing)} missing; expected operator.crt,"
                " operator.key and ca.crt as `wrctl cert issue --operator NAME --out DIR` writes"
            )
        return OperatorCredentials(files, f"from {CREDENTIALS_ENV}")
    if config is None and DEFAULT_CLUSTER_FILE.is_file():
        name = _cluster_name(DEFAULT_CLUSTER_FILE)
        if name:
            return cluster_credentials(DEFAULT_CLUSTER_FILE, name)
    if config is None:
        raise CredentialsError(
            "no operator credentials: give the cluster file (-c cluster.toml, whose CA wrctl"
            f" keeps) or set {CREDENTIALS_ENV}=DIR holding operator.crt, operator.key and"
            " ca.crt (`wrctl cert issue --operator NAME --out DIR` on the CA holder's machine)"
        )
    return cluster_credentials(config.source, config.cluster.name)


def _cluster_name(path: Path) -> str:
    """[cluster].name of a cluster.toml ("" when it cannot be read); only its CA is needed."""
    import tomllib

    try:
        name = tomllib.loads(path.read_text(encoding="utf-8")).get("cluster", {}).get("name")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return ""
    return name if isinstance(name, str) else ""


def cluster_credentials(cluster_file: Path, cluster: str) -> OperatorCredentials:
    """The operator certificate in the cluster's pki dir, issued for the local user when it
    is missing (or due for renewal) and the CA key is there."""
    from wrctl.pki import ClusterCA, PkiError, cluster_ca, pki_dir

    directory = pki_dir(cluster_file, cluster)
    files = files_in(directory)
    source = f"the cluster CA's dir {directory}"
    if not (directory / "ca.crt").exists():  # a manager that exists cannot trust this one
        source += f", a CA made just now: this machine had none for cluster {cluster!r}"
    have = files.cert_path.is_file() and files.key_path.is_file()
    if have and not (directory / "ca.key").exists():
        return OperatorCredentials(files, source)  # a CA copy without its key: use what is there
    try:
        ca: ClusterCA = cluster_ca(cluster_file, cluster)
        if not have or _renew(files):
            ca.operator_credentials(operator_name())
    except PkiError as exc:
        raise CredentialsError(
            f"{exc}; or set {CREDENTIALS_ENV}=DIR to operator credentials issued by the CA holder"
        ) from None
    return OperatorCredentials(files, source)


def _renew(files: TlsFiles) -> bool:
    """Is the operator certificate within the renewal window (or unreadable)?"""
    import datetime

    from cryptography import x509

    from wrctl.pki import RENEW_BEFORE

    try:
        cert = x509.load_pem_x509_certificate(files.cert_path.read_bytes())
    except (OSError, ValueError):
        return True
    return cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC) < RENEW_BEFORE


# ── channels ─────────────────────────────────────────────────────────────


def manager_channel(address: str, credentials: OperatorCredentials) -> grpc.Channel:
    """A mutual-TLS channel to the manager at `address` (verified as MANAGER_TLS_NAME)."""
    import grpc

    from runtime.identity import channel_options

    try:
        tls = channel_credentials(credentials.files)
    except TlsMaterialError as exc:
        raise CredentialsError(f"operator credentials ({credentials.source}): {exc}") from None
    return grpc.secure_channel(address, tls, channel_options(MANAGER_TLS_NAME))


_TLS_FAILURE = re.compile(r"handshake|ssl|certificate|tls|alert|socket closed", re.IGNORECASE)


def refusal(
    exc: grpc.RpcError, address: str, credentials: OperatorCredentials, what: str
) -> CredentialsError | None:
    """A clear error when the call failed because of who we are (TLS handshake refused,
    UNAUTHENTICATED, PERMISSION_DENIED); None for any other failure."""
    import grpc

    code = exc.code() if isinstance(exc, grpc.Call) else None
    details = (exc.details() if isinstance(exc, grpc.Call) else str(exc)) or ""
    used = credentials.describe()
    if code is grpc.StatusCode.PERMISSION_DENIED:
        return CredentialsError(
            f"manager at {address} refused {what}: {details} (credentials: {used})"
        )
    if code is grpc.StatusCode.UNAUTHENTICATED:
        return CredentialsError(
            f"manager at {address} did not accept the operator certificate for {what}:"
            f" {details} (credentials: {used}); the certificate carries no wruntime identity"
            f" of this cluster. Issue one with `wrctl cert issue --operator NAME`"
        )
    # "Stream removed (Socket closed)": the connection was up and the manager went away
    # mid-call (stopped, killed): not a refusal of who we are
    handshake = _TLS_FAILURE.search(details) and "stream removed" not in details.lower()
    if code is grpc.StatusCode.UNAVAILABLE and handshake:
        return CredentialsError(
            f"TLS handshake with the manager at {address} failed ({_last(details)}); "
            f"credentials used: {used}. Likely: the manager belongs to another cluster CA "
            f"(wrong cluster file or {CREDENTIALS_ENV}), a certificate expired, the manager is "
            f"not yet on TLS (apply it), or {CREDENTIALS_ENV} is missing on a machine without "
            "the cluster's CA."
        )
    return None


def _last(details: str) -> str:
    """The innermost reason of a gRPC connection error ("...; last error: X: reason")."""
    return details.split("last error: ", 1)[-1].strip() or details
