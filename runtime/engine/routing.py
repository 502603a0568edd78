"""Which module a request is for: x-wr-module/x-wr-namespace headers, else /{ns}.{module}/rest."""

from __future__ import annotations

from collections.abc import Mapping

from runtime.wire import MODULE_HEADER, NAMESPACE_HEADER, module_host


def select_module(headers: Mapping[str, str], path_qs: str) -> tuple[str | None, str]:
    """(namespace.module or None, the path the guest sees)."""
    module, namespace = headers.get(MODULE_HEADER), headers.get(NAMESPACE_HEADER)
    if module and namespace:
        return module_host(namespace, module), path_qs
    path, sep, query = path_qs.partition("?")
    first, slash, rest = path.lstrip("/").partition("/")
    if first.count(".") != 1:
        return None, path_qs
    guest_path = "/" + rest if slash else "/"
    return first, guest_path + sep + query
