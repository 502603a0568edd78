"""A bundle's manifest as readable text (and the summary numbers `inspect --json` adds)."""

from __future__ import annotations

from collections import Counter
from typing import Any


def summarize(manifest: dict[str, Any], digest: str, signed: bool) -> dict[str, Any]:
    """The manifest plus what a reader wants first: digest, signature, size per directory."""
    sizes: Counter[str] = Counter()
    for entry in manifest["files"]:
        top = entry["path"].split("/", 1)[0] if "/" in entry["path"] else "."
        sizes[top] += entry["size"]
    return {
        "digest": digest,
        "signed": signed,
        "size_by_dir": dict(sorted(sizes.items())),
        "manifest": manifest,
    }


def render_text(summary: dict[str, Any]) -> str:
    m = summary["manifest"]
    platform = m["platform"]
    lines = [
        f"bundle    {summary['digest']}",
        f"kind      {m['kind']}  target {m['target']}  cluster {m['cluster']}",
        f"runtime   {m['runtime_version']}  "
        f"platform {platform['tag']}  python {platform['python']}",
        f"signed    {'yes (manifest.sig)' if summary['signed'] else 'no'}",
        f"programs  {', '.join(m.get('programs', [])) or '-'}",
        "modules:",
    ]
    lines += [f"  {mod['key']}  sha256:{mod['sha256'][:16]}" for mod in m["modules"]] or ["  -"]
    lines.append(f"placeholders (resolved on the host): {' '.join(m['placeholders'])}")
    for secret in m.get("host_secrets", []):
        lines.append(
            f"host secret: {secret['what']} -> WORKDIR/{secret['file']} (or env {secret['env']})"
        )
    wheels = [f for f in m["files"] if f["path"].startswith("wheels/")]
    lines.append(f"files: {len(m['files'])} ({len(wheels)} wheels)")
    for top, size in summary["size_by_dir"].items():
        lines.append(f"  {top + '/' if top != '.' else '(top)':<12} {size / 1e6:10.2f} MB")
    others = [f for f in m["files"] if not f["path"].startswith("wheels/")]
    for entry in others:
        lines.append(f"  {entry['path']:<44} {entry['size']:>10}  {entry['sha256'][:16]}")
    return "\n".join(lines)
