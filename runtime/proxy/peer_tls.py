"""TLS contexts for the peer link: both ends present certificates from the cluster CA."""

from __future__ import annotations

import ssl

from runtime.proxy.config import NodeTls


class PeerTlsError(Exception):
    """The [node.tls] files cannot be used."""


def load_chain(context: ssl.SSLContext, tls: NodeTls) -> None:
    """Put the node certificate and key into `context` (affects handshakes from now on)."""
    try:
        context.load_cert_chain(str(tls.cert_path), str(tls.key_path))
    except (OSError, ssl.SSLError) as exc:
        raise PeerTlsError(
            f"[node.tls]: cannot load cert {tls.cert_path} with key {tls.key_path}: {exc}"
        ) from None


def _context(purpose: ssl.Purpose, tls: NodeTls) -> ssl.SSLContext:
    try:
        context = ssl.create_default_context(purpose, cafile=str(tls.ca_cert_path))
    except (OSError, ssl.SSLError) as exc:
        raise PeerTlsError(f"[node.tls]: cannot load CA {tls.ca_cert_path}: {exc}") from None
    load_chain(context, tls)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


def peer_server_context(tls: NodeTls) -> ssl.SSLContext:
    """For the peer listener: client certificates signed by the cluster CA are required."""
    context = _context(ssl.Purpose.CLIENT_AUTH, tls)
    context.verify_mode = ssl.CERT_REQUIRED
    return context


def peer_client_context(tls: NodeTls) -> ssl.SSLContext:
    """For forwarding to peers: verify the peer's certificate and host, present ours."""
    return _context(ssl.Purpose.SERVER_AUTH, tls)
