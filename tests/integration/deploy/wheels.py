"""A wheel of an installed distribution, repacked from this venv (no index needed), for
hand-made releases whose install needs `pip install --no-index --find-links wheels`."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import zipfile
from pathlib import Path

SKIP = {"INSTALLER", "REQUESTED", "direct_url.json", "RECORD", "uv_cache.json"}


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).decode().rstrip("=")


def repacked_wheel(distribution: str, cache: Path) -> Path:
    """`<cache>/wheels/<name>-<version>-<tag>.whl`, built once from the installed files."""
    dist = importlib.metadata.distribution(distribution)
    name, version = dist.metadata["Name"].replace("-", "_").lower(), dist.version
    tags = [
        line.split(":", 1)[1].strip().split("-")
        for line in (dist.read_text("WHEEL") or "").splitlines()
        if line.startswith("Tag:")
    ] or [["py3", "none", "any"]]
    tag = "-".join(".".join(dict.fromkeys(t[i] for t in tags)) for i in range(3))
    target = cache / "test-wheels" / f"{name}-{version}-{tag}.whl"
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    site = Path(str(dist.locate_file("")))
    dist_info = f"{name}-{version}.dist-info"
    records: list[str] = []
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as whl:
        for file in dist.files or []:
            rel = file.as_posix()
            if rel.startswith("..") or "__pycache__" in rel:
                continue  # scripts are regenerated from entry_points.txt; bytecode by pip
            if rel.split("/")[0].endswith(".dist-info"):
                if rel.split("/")[-1] in SKIP:
                    continue
                rel = f"{dist_info}/{rel.split('/', 1)[1]}"
            data = (site / file).read_bytes()
            whl.writestr(rel, data)
            records.append(f"{rel},{_record_hash(data)},{len(data)}")
        records.append(f"{dist_info}/RECORD,,")
        whl.writestr(f"{dist_info}/RECORD", "\n".join(records) + "\n")
    tmp.replace(target)
    return target
