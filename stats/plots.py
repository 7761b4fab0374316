"""PNG plots, byte-deterministic: Agg canvas without pyplot state, matplotlib's default style (not the
user's matplotlibrc), fixed size and DPI, and PNG metadata reduced to the title (no Software/date)."""

from __future__ import annotations

import io

import matplotlib
import matplotlib.style
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

SIZE = (7.0, 3.6)
DPI = 100
COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")


def _png(fig: Figure, title: str) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None, "Title": title})
    return buf.getvalue()


def _figure(title: str, ncols: int = 1) -> tuple[Figure, list]:
    fig = Figure(figsize=SIZE, dpi=DPI, layout="constrained")
    axes = [fig.add_subplot(1, ncols, i + 1) for i in range(ncols)]
    fig.suptitle(title, fontsize=11)
    return fig, axes


def _style():
    return matplotlib.style.context("default")  # matplotlib's defaults, whatever the user's matplotlibrc says


def funnel(rows: list[dict], title: str = "Funnel: documents and bytes kept per stage") -> bytes:
    """Stacked bars per stage: kept documents (left) and kept bytes (right), one color per source."""
    stages = list(dict.fromkeys(r["stage"] for r in rows))
    sources = sorted({r["source"] for r in rows})
    with _style():
        fig, (ax_d, ax_b) = _figure(title, 2)
        for ax, key, label in ((ax_d, "docs_kept", "documents kept"), (ax_b, "bytes_kept", "MB kept")):
            bottom = [0.0] * len(stages)
            for j, source in enumerate(sources):
                vals = [next((r[key] for r in rows if r["stage"] == s and r["source"] == source), 0) for s in stages]
                vals = [v / 1e6 for v in vals] if key == "bytes_kept" else vals
                ax.bar(range(len(stages)), vals, bottom=bottom, label=source, color=COLORS[j % len(COLORS)])
                bottom = [b + v for b, v in zip(bottom, vals)]
            ax.set_xticks(range(len(stages)), stages, rotation=30, ha="right", fontsize=8)
            ax.set_ylabel(label)
        ax_d.legend(fontsize=7)
        return _png(fig, title)


def histogram(per_kind: dict[str, dict], title: str, xlabel: str, log_x: bool) -> bytes:
    """One step line per kind over the stored bin edges and counts."""
    with _style():
        fig, (ax,) = _figure(title)
        for j, (kind, h) in enumerate(sorted(per_kind.items())):
            if h["counts"]:
                edges = [max(e, 0.5) for e in h["edges"]] if log_x else h["edges"]  # the 0 bin shown at 0.5 on a log axis
                ax.stairs(h["counts"], edges, label=f"{kind} ({sum(h['counts'])})", color=COLORS[j % len(COLORS)])
        if log_x:
            ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("documents")
        ax.legend(fontsize=8)
        return _png(fig, title)


def cluster_sizes(pairs: list[list[int]], title: str = "Near-duplicate cluster sizes") -> bytes:
    with _style():
        fig, (ax,) = _figure(title)
        ax.bar([p[0] for p in pairs], [p[1] for p in pairs], color=COLORS[0])
        ax.set_yscale("log")
        ax.set_xlabel("documents in cluster")
        ax.set_ylabel("clusters")
        return _png(fig, title)


def shard_ratios(per_shard: list[dict], target: float | None, title: str = "Code:text token ratio per shard") -> bytes:
    with _style():
        fig, (ax,) = _figure(title)
        xs = [i for i, s in enumerate(per_shard) if s["ratio_code_text"] is not None]
        ax.bar(xs, [per_shard[i]["ratio_code_text"] for i in xs], color=COLORS[0])
        if target:
            ax.axhline(target, color=COLORS[3], linestyle="--", label=f"target {target:g}")
            ax.legend(fontsize=8)
        ax.set_xlabel("shard")
        ax.set_ylabel("code tokens / text tokens")
        return _png(fig, title)
