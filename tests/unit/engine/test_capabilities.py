"""Import checks: runtime and WASI imports pass, capabilities need a grant and a host side."""

from __future__ import annotations

import pytest

from runtime.engine.capabilities import ImportRejected, check_imports

BASE = ["wasi:cli/stdin@0.2.0", "wruntime:runtime/log@0.1.0", "wruntime:runtime/outbound@0.1.0"]


def test_base_imports_pass() -> None:
    check_imports("example.echo", BASE, [])


def test_ungranted_capability() -> None:
    with pytest.raises(ImportRejected, match='not granted capability "llm"'):
        check_imports("example.a", [*BASE, "wruntime:llm/inference@0.1.0"], ["db"])


def test_granted_capability_without_host_side() -> None:
    with pytest.raises(ImportRejected, match='"blobstore" is granted, but this engine'):
        check_imports("example.a", ["wruntime:blobstore/store@0.1.0"], ["blobstore"])


def test_unknown_import() -> None:
    with pytest.raises(ImportRejected, match="imports acme:x/y, which wruntime does not provide"):
        check_imports("example.a", ["acme:x/y"], [])
