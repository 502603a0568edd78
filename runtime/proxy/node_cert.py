"""The node certificate as the proxy uses it now, reloaded in place when its files change.

One certificate serves the peer listener and client (ssl contexts), the control port (grpc,
through a certificate fetcher asked before each handshake) and the manager channel. Rotation
swaps it under all of them without a restart: connections already up keep their session,
new handshakes present the new certificate.
"""

from __future__ import annotations

import datetime
import logging
import os
import ssl
from collections.abc import Callable

import grpc
from cryptography import x509

from runtime.identity import NODE, Identity, TlsFiles, TlsMaterialError, identity_of
from runtime.proxy.config import NodeTls
from runtime.proxy.peer_tls import (
    PeerTlsError,
    load_chain,
    peer_client_context,
    peer_server_context,
)

log = logging.getLogger("wr-proxy.tls")

_Signature = tuple[tuple[int, int, int], ...]


class NodeCertificate:
    """Loads [node.tls] (PeerTlsError when unusable) and keeps every user of it current."""

    def __init__(self, tls: NodeTls) -> None:
        self.tls = tls
        self.files: TlsFiles = tls.files()
        self._signature = self._stat()
        self.cert_pem, self.key_pem, self.ca_pem = self._read()
        cert = _parse(self.cert_pem, tls)
        identity = identity_of(cert)
        if identity is None or identity.role != NODE:
            raise PeerTlsError(
                f"[node.tls]: {tls.cert_path} carries no node identity"
                f" (a wruntime://<cluster>/node/<name> URI); is it a node certificate?"
            )
        self.identity: Identity = identity
        self.not_after = cert.not_valid_after_utc
        self.server_context: ssl.SSLContext = peer_server_context(tls)
        self.client_context: ssl.SSLContext = peer_client_context(tls)
        self._grpc_next: grpc.ServerCertificateConfiguration | None = None
        self.on_reload: list[Callable[[], None]] = []

    # ── what the users get ────────────────────────────────────────────────

    def grpc_server_credentials(self) -> grpc.ServerCredentials:
        """Mutual TLS requiring a client certificate of the CA, following reloads."""
        return grpc.dynamic_ssl_server_credentials(
            self._grpc_config(),
            self._fetch_grpc_config,  # type: ignore[arg-type]  # grpc documents None: no change
            require_client_authentication=True,
        )

    def channel_credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca_pem,
            private_key=self.key_pem,
            certificate_chain=self.cert_pem,
        )

    def _grpc_config(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self.key_pem, self.cert_pem)], root_certificates=self.ca_pem
        )

    def _fetch_grpc_config(self) -> grpc.ServerCertificateConfiguration | None:
        # grpc asks before every handshake; None keeps what it has.
        config, self._grpc_next = self._grpc_next, None
        return config

    # ── reloading ─────────────────────────────────────────────────────────

    def check(self) -> bool:
        """Reload when the files changed (a few stat calls otherwise); True when reloaded.

        A replacement that cannot be used (unreadable, key not matching, another identity)
        is logged and the current certificate stays. Files written one after the other are
        looked at again after each write, so a half-done swap settles once both are there."""
        signature = self._stat()
        if signature == self._signature:
            return False
        self._signature = signature
        try:
            cert_pem, key_pem, ca_pem = self._read()
        except PeerTlsError as exc:
            log.warning("node certificate not reloaded", extra={"error": str(exc)})
            return False
        if (cert_pem, key_pem, ca_pem) == (self.cert_pem, self.key_pem, self.ca_pem):
            return False  # rewritten with the same content
        try:
            cert = self._check_replacement(cert_pem, ca_pem)
        except PeerTlsError as exc:
            log.warning("node certificate not reloaded", extra={"error": str(exc)})
            return False
        if ca_pem != self.ca_pem:  # the contexts add it: both CAs verify during a CA change
            for context in (self.server_context, self.client_context):
                context.load_verify_locations(cadata=ca_pem.decode())
        for context in (self.server_context, self.client_context):
            load_chain(context, self.tls)
        self.cert_pem, self.key_pem, self.ca_pem = cert_pem, key_pem, ca_pem
        self.not_after = cert.not_valid_after_utc
        self._grpc_next = self._grpc_config()
        for callback in self.on_reload:
            callback()
        log.info(
            "node certificate reloaded",
            extra={
                "not_after": self.not_after.isoformat(),
                "serial": format(cert.serial_number, "x"),
                "identity": self.identity.uri,
            },
        )
        return True

    def _check_replacement(self, cert_pem: bytes, ca_pem: bytes) -> x509.Certificate:
        cert = _parse(cert_pem, self.tls)
        if identity_of(cert) != self.identity:
            raise PeerTlsError(
                f"[node.tls]: {self.tls.cert_path} now names {identity_of(cert)}, not"
                f" {self.identity}; a node keeps its identity (restart it to change)"
            )
        if cert.not_valid_after_utc <= datetime.datetime.now(datetime.UTC):
            raise PeerTlsError(f"[node.tls]: {self.tls.cert_path} has expired")
        # A scratch context proves the key matches the certificate before anyone uses them.
        probe = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            probe.load_verify_locations(cadata=ca_pem.decode())
        except (ssl.SSLError, ValueError) as exc:
            raise PeerTlsError(f"[node.tls]: {self.tls.ca_cert_path}: bad CA: {exc}") from None
        load_chain(probe, self.tls)
        return cert

    def _stat(self) -> _Signature:
        out = []
        for path in (self.tls.cert_path, self.tls.key_path, self.tls.ca_cert_path):
            try:
                st = os.stat(path)
            except OSError:
                out.append((0, 0, 0))
                continue
            out.append((st.st_mtime_ns, st.st_size, st.st_ino))
        return tuple(out)

    def _read(self) -> tuple[bytes, bytes, bytes]:
        try:
            return self.files.read()
        except TlsMaterialError as exc:
            raise PeerTlsError(f"[node.tls]: {exc}") from None


def _parse(pem: bytes, tls: NodeTls) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(pem)
    except ValueError as exc:
        raise PeerTlsError(f"[node.tls]: {tls.cert_path} is not a PEM certificate: {exc}") from None
