"""Hatch build hook: regenerate runtime/api from proto/wruntime.proto before packaging, and
ship templates/ and wit/ inside the wheel (wrctl/_templates, wrctl/build/wit)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class ProtoBuildHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        spec = importlib.util.spec_from_file_location(
            "protogen", Path(self.root) / "scripts" / "protogen.py"
        )
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.generate(Path(self.root))
        if version == "standard":  # editable installs read these from the checkout
            root = Path(self.root)
            build_data["force_include"][str(root / "templates")] = "wrctl/_templates"
            build_data["force_include"][str(root / "wit")] = "wrctl/build/wit"
