"""Parse x-wr-destination: `http://{namespace}.{module}/{path}` or an external http(s) URL."""

from __future__ import annotations

import ipaddress
import re

from runtime.names import NAME_RE
from runtime.wire import DESTINATION_HEADER, module_host

_LABEL = re.compile(rb"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")  # used with fullmatch
# What may not appear raw in a request target: whitespace and control bytes would break the
# request line sent upstream; other bytes outside ASCII are never valid unescaped (RFC 3986).
_NOT_IN_TARGET = re.compile(rb"[\x00-\x20\x7f-\xff]")
_CACHE_LIMIT = 4096


def egress_label(host: str) -> str:
    """How metrics and breakers name calls to an external host."""
    return f"egress:{host}"


class BadDestination(ValueError):
    """x-wr-destination is missing or not a usable URL."""


class Destination:
    """A parsed destination. `namespace`/`module` are set for cluster modules, else None."""

    __slots__ = (
        "authority",
        "host",
        "label",
        "module",
        "namespace",
        "path",
        "port",
        "request_tail",
        "tls",
    )

    def __init__(
        self,
        authority: bytes,
        host: str,
        port: int,
        tls: bool,
        path: bytes,
        namespace: str | None,
        module: str | None,
    ) -> None:
        self.authority = authority
        self.host = host
        self.port = port
        self.tls = tls
        self.path = path
        self.namespace = namespace
        self.module = module
        self.label = (
            module_host(namespace, module)
            if namespace is not None and module is not None
            else egress_label(host)
        )
        # What follows the method in the forwarded head, for HTTP/1.1 and HTTP/1.0 requests
        # (built once per destination instead of once per request).
        self.request_tail = tuple(
            b" %s HTTP/1.%d\r\nhost: %s\r\n" % (path, minor, authority) for minor in (1, 0)
        )

    @property
    def is_module(self) -> bool:
        return self.module is not None

    @property
    def is_single_label(self) -> bool:
        """A host of one label (`http://some-service/...`): no namespace for a module, no
        domain for a public host; reachable only as a name the egress allowlist lists."""
        return "." not in self.host and ":" not in self.host


def shape_problem(raw: bytes, dest: Destination) -> str:
    """Why a single-label destination is malformed, with the shape a module call takes."""
    return (
        f"{DESTINATION_HEADER} {_show(raw)} names no namespace: a module is called as "
        f"http://{{namespace}}.{{module}}/{{pkg}}.{{Service}}/{{Method}} "
        f"(here http://NAMESPACE.{dest.host}{dest.path.decode('latin-1')[:100]}); "
        "an external host needs its domain name listed in [egress] allowed_domains"
    )


def _show(raw: bytes) -> str:
    return repr(raw[:200].decode("latin-1"))


def _valid_host(host: bytes) -> bool:
    if host.startswith(b"[") and host.endswith(b"]"):
        try:
            ipaddress.IPv6Address(host[1:-1].decode("ascii"))
        except (ValueError, UnicodeDecodeError):
            return False
        return True
    return all(_LABEL.fullmatch(label) for label in host.split(b"."))


def _parse(raw: bytes) -> Destination:
    lowered = raw[:8].lower()
    if lowered.startswith(b"http://"):
        tls, rest = False, raw[7:]
    elif lowered.startswith(b"https://"):
        tls, rest = True, raw[8:]
    else:
        raise BadDestination(
            f"{DESTINATION_HEADER} {_show(raw)} must be an http:// or https:// URL "
            "(e.g. http://namespace.module/pkg.Service/Method)"
        )
    slash = rest.find(b"/")
    authority, path = (rest, b"/") if slash < 0 else (rest[:slash], rest[slash:])
    if b"?" in authority or b"#" in authority or b"@" in authority or not authority:
        raise BadDestination(f"{DESTINATION_HEADER} {_show(raw)} has no usable host")
    authority = authority.lower()
    host, port = authority, 443 if tls else 80
    colon = authority.rfind(b":")
    if colon > authority.rfind(b"]"):
        host, port_text = authority[:colon], authority[colon + 1 :]
        if not port_text.isdigit() or not 0 < int(port_text) < 65536:
            raise BadDestination(f"{DESTINATION_HEADER} {_show(raw)} has a bad port")
        port = int(port_text)
    if not _valid_host(host):
        raise BadDestination(
            f"{DESTINATION_HEADER} {_show(raw)}: {_show(host)} is not a valid host"
        )
    if b"#" in path:
        path = path[: path.find(b"#")]
    bad = _NOT_IN_TARGET.search(path)
    if bad is not None:
        raise BadDestination(
            f"{DESTINATION_HEADER} {_show(raw)}: byte 0x{ord(bad.group()):02x} at offset "
            f"{bad.start()} of the path cannot appear in a URL; percent-encode it (a space is %20)"
        )
    text = host.decode("ascii")
    labels = text.split(".")
    if not tls and len(labels) == 2 and colon < 0 and all(NAME_RE.fullmatch(x) for x in labels):
        return Destination(authority, text, port, tls, path, labels[0], labels[1])
    return Destination(authority, text.strip("[]"), port, tls, path, None, None)


class DestinationParser:
    """Parses destinations, remembering recent results (the same few recur on the hot path)."""

    def __init__(self) -> None:
        self._cache: dict[bytes, Destination | str] = {}

    def parse(self, raw: bytes) -> Destination:
        found = self._cache.get(raw)
        if found is None:
            try:
                found = _parse(raw)
            except BadDestination as exc:
                found = str(exc)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            self._cache[raw] = found
        if isinstance(found, str):
            raise BadDestination(found)
        return found
