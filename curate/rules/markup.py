"""What is not prose, for language ID: code blocks, LaTeX, wikitext, HTML and URLs, as RE2 patterns.

fastText scores every token it is given, so a documentation page that is half code, or a LaTeX paper
that is half commands and math, gets a low English score although all its prose is English. `mask`
blanks these spans in the string given to the model; the document's text is never changed.

Each row of `PATTERNS` is (what it matches, pattern, replacement); they run in order, each as one Arrow
regex pass over the documents that contain any `MARKERS` character sequence. A document without any marker
(plain prose) is returned as it is, byte for byte, so language ID on prose equals the raw model's. A
document whose prose is nearly all masked (fewer than `MIN_PROSE_LETTERS` letters left) keeps its
original string: it is then judged on everything, as before.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_LATEX_BLOCKS = ("equation|align|alignat|eqnarray|gather|multline|displaymath|math|tabular|tabularx|array|"
                 "verbatim|lstlisting|minted|tikzpicture|algorithmic|algorithm")
_CODE_TOKEN = r"\w\(|->|==|!=|:=|\+=|;\s*$"
_REST_CODE = "code-block|code|sourcecode|literalinclude|doctest|highlight|productionlist|math|csv-table"

PATTERNS: tuple[tuple[str, str, str], ...] = (
    ("Markdown fenced code (to the closing fence or the end)", r"(?s)```.*?(?:```|$)", " "),
    ("Markdown fenced code with tildes", r"(?s)~~~.*?(?:~~~|$)", " "),
    ("reST code directive and its indented body",
     r"(?m)^\.\. (?:" + _REST_CODE + r")::[^\n]*\n(?:[ \t]*\n|[ \t]+[^\n]*\n?)*", " "),
    ("reST literal block after '::'", r"::[ \t]*\n(?:[ \t]*\n)+(?:[ \t]+[^\n]*\n?|[ \t]*\n)*", ". "),
    ("doctest lines", r"(?m)^[ \t]*(?:>>>|\.\.\.)[^\n]*$", " "),
    ("shell prompt lines", r"(?m)^[ \t]*\$ [^\n]*$", " "),
    ("reST directive, comment and target lines, and directive options",
     r"(?m)^[ \t]*\.\. [^\n]*$|^[ \t]+:[A-Za-z-]+:[^\n]*$", " "),
    ("reST roles", r":[A-Za-z]+(?::[A-Za-z]+)?:`[^`\n]*`", " "),
    ("indented lines with code punctuation", r"(?m)^(?: {4,}|\t)[^\n]*[=(){};<>\[\]][^\n]*$", " "),
    ("inline code", r"`[^`\n]+`", " "),
    ("HTML comments", r"(?s)<!--.*?-->", " "),
    ("wikitext references", r"(?s)<ref[^>/]*/>|<ref[^>]*>.*?</ref>", " "),
    ("table lines: wikitext ({| |- | ! |}) and Markdown (| a | b |), nested or not",
     r"(?m)^[ \t]*(?:\{\||\|\}|\||!)[^\n]*$", " "),
    # innermost templates first, three times: RE2 has no recursion, three levels of nesting are removed
    *[("wikitext templates", r"\{\{[^{}]*\}\}", " ")] * 3,
    ("wikitext file and category links", r"\[\[(?:File|Image|Category):[^\]]*\]\]", " "),
    ("wikitext links: their label stays", r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]", r"\1"),
    ("lines with two or more code tokens (calls, arrows, comparisons, assignments, a closing semicolon)",
     r"(?m)^[^\n]*(?:" + _CODE_TOKEN + r")[^\n]*(?:" + _CODE_TOKEN + r")[^\n]*$", " "),
    ("LaTeX preamble (up to \\begin{document})", r"(?s)\A.*?\\begin\{document\}", " "),
    ("LaTeX environments of math, tables, code and figures",
     r"(?s)\\begin\{(?:" + _LATEX_BLOCKS + r")\*?\}.*?\\end\{(?:" + _LATEX_BLOCKS + r")\*?\}", " "),
    ("LaTeX display math", r"(?s)\$\$.*?\$\$|\\\[.*?\\\]", " "),
    ("LaTeX inline math (with a TeX character inside, so '$5 and $10' stays)",
     r"\$[^$\n]*[\\^_{}=][^$\n]*\$|\\\(.*?\\\)", " "),
    ("LaTeX comment lines", r"(?m)^[ \t]*%[^\n]*$", " "),
    ("LaTeX commands with their options (their {arguments} stay: titles are prose)",
     r"\\[A-Za-z]+\*?(?:\[[^\]\n]*\])?", " "),
    ("Markdown link targets: the label stays", r"\]\([^)\n]*\)", "]"),
    ("heading underlines and rules (reST, Markdown, wikitext)", r"[=\-~^*+#_]{4,}", " "),
    ("HTML tags", r"</?[A-Za-z][^>\n]*>", " "),
    ("URLs", r"https?://\S+|www\.\S+", " "),
)
MARKERS = r"\w\(|->|==|;|```|~~~|::|>>>|`|<|\{\{|\{\||^\||\n\||\[\[|\]\(|\\|\$|http|www\.|^ {4}|\n {4}|\t|\.\. |[=\-~^*+#_]{4}"
MIN_PROSE_LETTERS = 20


def mask(texts: pa.Array) -> pa.Array:
    """`texts` with what is not prose blanked (see the module docstring); same length and order."""
    texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    marked = pc.fill_null(pc.match_substring_regex(texts, MARKERS), False).to_numpy(zero_copy_only=False)
    if not marked.any():
        return texts
    rows = np.flatnonzero(marked)
    picked = texts.take(pa.array(rows))
    masked = picked
    for _, pattern, replacement in PATTERNS:
        masked = pc.replace_substring_regex(masked, pattern, replacement)
    letters = pc.utf8_length(pc.replace_substring_regex(masked, r"[^\pL]+", "")).to_numpy(zero_copy_only=False)
    masked = pc.if_else(pa.array(letters >= MIN_PROSE_LETTERS), masked, picked)
    if len(rows) == len(texts):
        return masked
    return pc.replace_with_mask(texts, pa.array(marked), masked.cast(texts.type))
