"""Small helpers for the plotly figures rlhfkit draws (the live dashboard, the comparison report, notebooks).

`plotly_text(s)`: untrusted text (run and policy names, annotators' labels, model samples) for any text field plotly
draws: titles, legend entries (trace names), hover text, axis and subplot titles, annotations. plotly.js renders
all of them through its own small pseudo-HTML, not the browser's HTML parser (checked in plotly.js 4.1, the one
plotly 7.1 ships, `svg_text_utils`):

- `<b> <i> <em> <s> <u> <sup> <sub> <span style=...> <br>` become formatting and `<a href=...>` a clickable link;
  other tags (`<img ...>`, `<script>`) stay on screen as text; nothing is ever inserted as HTML;
- only the entities `&amp; &lt; &gt; &nbsp; &mu; &times; &plusmn; &deg;` and numeric ones (`&#34;`) are decoded,
  once, after the tags are split off: `html.escape`'s `&quot;` and `&#x27;` are fine but `&quot;` is not decoded,
  so a double quote escaped that way shows as "&quot;";
- text between dollar signs is typeset as TeX wherever MathJax is loaded in the page.

So `plotly_text` escapes `&`, `<`, `>` as the entities plotly decodes, `$` as `&#36;`, and leaves quotes alone:
the text then shows exactly as written. HTML that is ours (tables, headings, the page title) is escaped with
`html.escape`, once; the JSON that carries a figure into a page is script-safe already (plotly.io writes `<`, `>`
and `/` as `\\u003c`, `\\u003e`, `\\u002f`).

`step_dtick(last_step)`: the tick spacing of a training-step axis, a whole number (1, 2, 5, 10, 20, ...) giving at
most `max_ticks` ticks, for `tickmode="linear"`: plotly's automatic ticks put 1.5 and 2.5 on a short run.
"""

from __future__ import annotations

from typing import Any

__all__ = ["plotly_text", "step_dtick", "step_axis"]

_PLOTLY_ESCAPES = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;", "$": "&#36;"})


def plotly_text(value: Any) -> str:
    """`value` as text plotly shows literally (see the module docstring for plotly's rules); None is ""."""
    return ("" if value is None else str(value)).translate(_PLOTLY_ESCAPES)


def step_dtick(last_step: float | None, max_ticks: int = 6) -> int:
    """The smallest of 1, 2, 5, 10, 20, 50, ... that puts at most `max_ticks` ticks on 0..last_step."""
    span = max(1.0, float(last_step or 1))
    base = 1
    while True:
        for factor in (1, 2, 5):
            if span / (base * factor) <= max_ticks:
                return base * factor
        base *= 10


def step_axis(last_step: float | None, **more: Any) -> dict:
    """Layout settings of an x axis of training steps: titled "step", whole-number ticks only."""
    return {
        "title": {"text": "step"},
        "tickmode": "linear",
        "tick0": 0,
        "dtick": step_dtick(last_step),
        "tickformat": "d",
        **more,
    }
