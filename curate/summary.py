"""The one-screen summary printed after a run: per stage and source, documents and bytes."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def format_summary(manifests: list[dict]) -> str:
    lines = [f"{'stage':<12} {'source':<16} {'docs in':>9} {'kept':>9} {'bytes in':>10} {'bytes kept':>10}  dropped by reason"]
    for m in manifests:
        for source, c in m["ledger"].items():
            reasons = _top_reasons(c["docs_dropped"])
            lines.append(f"{m['stage']:<12} {source:<16} {c['docs_in']:>9} {c['docs_kept']:>9} "
                         f"{human_bytes(c['bytes_in']):>10} {human_bytes(c['bytes_kept']):>10}  {reasons}")
    return "\n".join(lines)


def _top_reasons(dropped: dict[str, int], shown: int = 3) -> str:
    """The most frequent reasons first, at most `shown` of them, so the summary stays one screen wide."""
    if not dropped:
        return "-"
    ranked = sorted(dropped.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ", ".join(f"{r.split('.', 1)[1]}={n}" for r, n in ranked[:shown])
    rest = len(ranked) - shown
    return text + (f" (+{rest} more reasons: curate stats)" if rest > 0 else "")
