"""The jinja2 environment over templates/ (shipped in the wheel as wrctl/_templates). Values
enter a template through the filter of its file's syntax (wrctl/escaping.py: `toml`, `yaml`,
`sh`, `supervisor`, `supervisor_env`, `systemd_exec`, `systemd_env`, `dockerfile`); whatever
the filter, a value with a control character is refused (`finalize`)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

from wrctl import escaping
from wrctl.errors import WrctlError


def template_dir() -> Path:
    packaged = Path(__file__).parent / "_templates"
    return packaged if packaged.is_dir() else Path(__file__).resolve().parent.parent / "templates"


@cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(template_dir()),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # TOML, INI, YAML and shell, not HTML: filters escape per syntax
        finalize=escaping.one_line,
    )
    env.filters.update(
        toml=escaping.toml,
        toml_key=escaping.toml_key,
        yaml=escaping.yaml,
        sh=escaping.quote,
        supervisor=escaping.supervisor,
        supervisor_env=escaping.supervisor_env,
        systemd_exec=escaping.systemd_exec,
        systemd_env=escaping.systemd_env,
        dockerfile=escaping.dockerfile,
    )
    return env


def render(name: str, **context: Any) -> str:
    """The template `name` rendered; WrctlError naming it when a value cannot be written."""
    try:
        return _env().get_template(name).render(**context)
    except escaping.UnsafeValue as exc:
        raise WrctlError(f"{name.removesuffix('.j2')}: {exc}") from None
