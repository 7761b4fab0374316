"""Documents written for the curation tests: one per kind of edited text (each must be kept by the `curated`
profile) and planted junk (each must be dropped by every text profile but `none`). Written here, not
copied: they imitate the shape of each kind, which is what the rules look at."""

from __future__ import annotations

_WORDS = {
    "adj": "small grey quiet busy northern old new narrow wide distant famous plain local bright dark tired eager "
           "patient careful sudden gentle bitter humble proud ancient modern silent crowded empty golden".split(),
    "noun": "harbour wall pier committee surveyor village river winter garden letter captain widow merchant "
            "school church bridge mill road orchard lantern kitchen market doctor sailor teacher painter".split(),
    "verb": "watched repaired crossed described remembered visited praised ignored followed painted questioned "
            "measured guarded admired avoided carried opened closed answered studied".split(),
    "prep": "beyond beside under near behind above across along around toward".split(),
}


def prose(n_sentences: int, seed: int = 0) -> str:
    """Varied English prose from a seeded generator: sentences of a few shapes over a small vocabulary, so
    that long n-grams do not repeat (as in real books), with stop words at a natural rate."""
    import random

    rng = random.Random(seed)
    w = {k: (lambda k=k: rng.choice(_WORDS[k])) for k in _WORDS}
    shapes = (
        lambda: f"The {w['adj']()} {w['noun']()} {w['verb']()} the {w['noun']()} {w['prep']()} the {w['adj']()} {w['noun']()}.",
        lambda: f"In the {w['adj']()} morning, a {w['noun']()} and the {w['noun']()} {w['verb']()} what was left of the {w['noun']()}.",
        lambda: f"It was said that the {w['noun']()} had {w['verb']()} the {w['noun']()} with {w['adj']()} care.",
        lambda: f"Nobody {w['verb']()} the {w['adj']()} {w['noun']()}, and that was to be the end of it.",
    )
    return " ".join(rng.choice(shapes)() for _ in range(n_sentences))


LATEX = r"""\documentclass{article}
\usepackage{amsmath}
\title{On the Convergence of Averaged Iterates}
\begin{document}
\maketitle
\section{Introduction}
We study the averaged iterates of stochastic gradient descent and show that, under mild conditions,
their error decreases at the optimal rate. Let $f:\mathbb{R}^d \to \mathbb{R}$ be convex and let
$x_{t+1} = x_t - \eta_t g_t$, where $g_t$ is an unbiased estimate of $\nabla f(x_t)$.
\begin{equation}
  \bar{x}_T = \frac{1}{T}\sum_{t=1}^{T} x_t, \qquad \mathbb{E}[f(\bar{x}_T)] - f^\star \le \frac{C}{\sqrt{T}}.
\end{equation}
Our main result, Theorem~\ref{thm:main}, holds for any step size schedule with $\sum_t \eta_t = \infty$.
\section{Related work}
Averaging was proposed by Polyak and Juditsky \cite{polyak1992} and has been studied widely since.
\end{document}
"""

STACKEXCHANGE = """Q: How do I reverse a list in Python without changing the original?

I have a list of numbers and I want a reversed copy, but `list.reverse()` changes my list in place.

A: Use slicing, which returns a new list:

```python
numbers = [1, 2, 3]
backwards = numbers[::-1]
print(numbers, backwards)  # {'unchanged': True}
```

Alternatively, `list(reversed(numbers))` does the same and reads well."""

ARITHMETIC = "Calculate the remainder when 1213 is divided by 33.\n25"

MARKDOWN_GUIDE = """# Getting started

Install the package, then create a configuration file in your project directory.

```sh
pip install example-tool
example-tool init --path ./config.yaml
```

The file holds a `name` and a list of `targets`:

```yaml
name: demo
targets: {build: true, test: false}
```

Run `example-tool build` to compile every target. See the [reference](https://example.org/ref) for all options."""

ENCYCLOPEDIA_WIKITEXT = """'''Lake Varna''' is a freshwater lake in the northern highlands.{{cite web |title=Lakes |year=2001}}

== Geography ==
The lake lies at an altitude of 412 metres and is fed by three small rivers.
{| class="wikitable"
|-
! Year !! Depth (m)
|-
| 1950 || 31
|}
It drains to the sea through the [[Varna River|river of the same name]]."""

KEPT_BY_CURATED = {
    "latex": LATEX,
    # over 100,000 words, with a transcriber's brace mark as Gutenberg texts have
    "book": "THE HARBOUR\n\nCHAPTER I {3}\n\n" + "\n\n".join(prose(12, seed=k) for k in range(700)),
    "stackexchange": STACKEXCHANGE,
    "arithmetic": ARITHMETIC,
    "markdown_guide": MARKDOWN_GUIDE,
    "wikitext": ENCYCLOPEDIA_WIKITEXT,
}

JUNK = {
    "repeated_line": "Click here to claim your free prize today!\n" * 50,
    "lorem_ipsum": ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut "
                    "labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco.\n") * 3,
    "keyword_stuffing": " ".join(f"cheap shoes {w} buy cheap shoes online best cheap shoes {w} shoes sale"
                                 for w in ("men", "women", "kids", "running", "leather", "outlet", "discount",
                                           "free shipping", "near me", "store")),
    "mojibake": prose(12).replace("e", "Ã©").replace("'", "â€™").replace(" a ", " Ã  "),
    "navigation_menu": "\n".join(["Home", "About Us", "Products", "Services", "Blog", "Careers", "Contact",
                                  "Privacy Policy", "Terms of Use", "Sitemap", "Login", "Sign up"]),
}
