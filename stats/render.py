"""One report, two renderings: a list of blocks becomes Markdown (report.md, PNGs beside it) or a
self-contained HTML page (PNGs inlined as base64 data URIs; no script, no stylesheet or font link).

Blocks: ("h1" | "h2" | "h3" | "p", text), ("table", headers, rows), ("img", file name, alt text).
"""

from __future__ import annotations

import base64
import html

CSS = """body{font-family:sans-serif;max-width:72em;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-size:90%}th,td{border:1px solid #ccc;padding:.2em .5em}
td.n{text-align:right}th{background:#f2f2f2}img{max-width:100%}code{background:#f4f4f4}"""


def fmt(v) -> str:
    """Ints with thousands separators, floats to 4 significant digits, None as an en dash."""
    if v is None:
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"
    return str(v)


def pct(num: float, den: float) -> str:
    return f"{100 * num / den:.2f}%" if den else "–"


def _md_cell(v) -> str:
    return fmt(v).replace("|", "\\|").replace("<", "&lt;").replace("\n", " ").replace("\r", " ")


def to_markdown(blocks: list[tuple]) -> str:
    out = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3"):
            out.append("#" * int(kind[1]) + " " + b[1])
        elif kind == "p":
            out.append(b[1])
        elif kind == "table":
            headers, rows = b[1], b[2]
            out.append("\n".join(["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
                                 + ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]))
        elif kind == "img":
            out.append(f"![{b[2]}]({b[1]})")
    return "\n\n".join(out) + "\n"


def to_html(blocks: list[tuple], images: dict[str, bytes], title: str) -> str:
    body = []
    for b in blocks:
        kind = b[0]
        if kind in ("h1", "h2", "h3", "p"):
            body.append(f"<{kind}>{html.escape(b[1])}</{kind}>")
        elif kind == "table":
            head = "".join(f"<th>{html.escape(h)}</th>" for h in b[1])
            rows = "".join("<tr>" + "".join(_td(c) for c in row) + "</tr>\n" for row in b[2])
            body.append(f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n{rows}</tbody>\n</table>")
        elif kind == "img":
            data = base64.b64encode(images[b[1]]).decode("ascii")
            body.append(f'<figure><img alt="{html.escape(b[2])}" src="data:image/png;base64,{data}"></figure>')
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
            + "\n".join(body) + "\n</body>\n</html>\n")


def _td(v) -> str:
    cls = ' class="n"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
    return f"<td{cls}>{html.escape(fmt(v))}</td>"
