"""The jinja2 environment over templates/ (shipped in the wheel as wrctl/_templates)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2


def template_dir() -> Path:
    packaged = Path(__file__).parent / "_templates"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "templates"


@cache
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir()),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # TOML, INI and shell, not HTML
    )


def render(name: str, **context: Any) -> str:
    return _env().get_template(name).render(**context)
