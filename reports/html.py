"""HTML building blocks: escaping, tables, figure slots and the self-contained page.

Safety rules, applied here once so that the report modules cannot forget them:

- Text goes through ``esc`` (``html.escape`` with quotes) unless it is ``Markup``, which
  only this package builds, from escaped parts.
- Figures travel as one JSON document in ``<script type="application/json">`` with every
  ``<``, ``>`` and ``&`` written as a ``\\u00XX`` escape, so no string from a run can close
  the element (``</script>``) or open a comment (``<!--``); ``JSON.parse`` restores them.
- A Content-Security-Policy allows only the page's own two scripts (by hash), no network
  at all (``default-src 'none'``), and images only from ``data:``/``blob:``. Even a string
  that escaped the escaping could neither run a script nor fetch anything.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Protocol

import plotly.graph_objects as go
import plotly.io as pio
import plotly.offline

__all__ = [
    "Markup",
    "PanelLike",
    "esc",
    "figure_slots",
    "page",
    "script_json",
    "table",
]


class PanelLike(Protocol):
    """What the report needs of a ``dashboards.Panel``."""

    @property
    def key(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def figure(self) -> go.Figure: ...
    @property
    def note(self) -> str: ...


class Markup(str):
    """HTML that is already safe (built from escaped parts); ``esc`` passes it through."""


def esc(value: object) -> Markup:
    if isinstance(value, Markup):
        return value
    return Markup(html.escape(str(value), quote=True))


def join(parts: Iterable[str]) -> Markup:
    """Concatenate, escaping every part that is not already ``Markup``."""
    return Markup("".join(esc(p) for p in parts))


_SCRIPT_UNSAFE = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_SCRIPT_UNSAFE_RE = re.compile("[<>&\u2028\u2029]")


def script_json(json_text: str) -> str:
    """JSON text made safe inside a ``<script>`` element (same value after JSON.parse)."""
    return _SCRIPT_UNSAFE_RE.sub(lambda m: _SCRIPT_UNSAFE[m.group(0)], json_text)


def table(
    headers: Sequence[str],
    rows: Iterable[Sequence[str]],
    *,
    numeric_from: int = 1,
    cls: str = "",
    row_classes: Sequence[str] | None = None,
) -> Markup:
    """A table; columns from ``numeric_from`` on are right-aligned figures."""

    def cell(tag: str, index: int, text: str) -> str:
        cls = ' class="num"' if index >= numeric_from else ""
        return f"<{tag}{cls}>{esc(text)}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = []
    for r, row in enumerate(rows):
        row_cls = row_classes[r] if row_classes is not None else ""
        tr = f'<tr class="{esc(row_cls)}">' if row_cls else "<tr>"
        body.append(tr + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>")
    table_cls = f' class="{esc(cls)}"' if cls else ""
    return Markup(
        f"<table{table_cls}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def figure_slots(panels: Sequence[PanelLike], prefix: str = "fig") -> tuple[Markup, str]:
    """The figure sections and the JSON (script-safe) that fills them, in panel order."""
    blocks, specs = [], []
    for index, panel in enumerate(panels):
        dom_id = f"{prefix}-{index}-{_slug(panel.key)}"
        note = f'<p class="note">{esc(panel.note)}</p>' if panel.note else ""
        # A figure that draws its own title keeps the heading for screen readers only.
        hidden = ' class="visually-hidden"' if panel.figure.layout.title.text else ""
        blocks.append(
            f'<section class="panel" id="{dom_id}-panel"><h3{hidden}>{esc(panel.title)}</h3>'
            f'<div class="figure" id="{dom_id}"></div>{note}</section>'
        )
        figure_json = pio.to_json(panel.figure, validate=False, remove_uids=True)
        specs.append(f'{{"id":"{dom_id}","figure":{figure_json}}}')
    return Markup("".join(blocks)), script_json("[" + ",".join(specs) + "]")


def _slug(key: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", key.lower()).strip("-")[:40] or "panel"


# Draws every figure from the JSON block; a figure that fails says so in its slot and on
# the console (the browser tests treat a console error as a failure).
_INIT_JS = """(function () {
  "use strict";
  var specs = JSON.parse(document.getElementById("slabench-figures").textContent);
  var config = {displaylogo: false, responsive: true};
  function fail(div, err) {
    div.textContent = "This figure could not be drawn: " + err;
    console.error("slabench: figure " + div.id + " failed: " + err);
  }
  specs.forEach(function (spec) {
    var div = document.getElementById(spec.id);
    var fig = spec.figure || {};
    if (!div) {
      console.error("slabench: no element for figure " + spec.id);
      return;
    }
    try {
      Plotly.newPlot(div, fig.data || [], fig.layout || {}, config)
        .catch(function (err) { fail(div, err); });
    } catch (err) {
      fail(div, err);
    }
  });
})();"""


def page(title: str, body: Markup, figures_json: str = "[]") -> str:
    """The whole document: CSP, style, plotly.js (inlined once), body, figures."""
    plotly_js = _plotly_js()
    hashes = " ".join(f"'sha256-{_sha256_b64(s)}'" for s in (plotly_js, _INIT_JS))
    # 'unsafe-eval': plotly's WebGL traces compile code with Function(); nothing is fetched.
    csp = (
        f"default-src 'none'; script-src {hashes} 'unsafe-eval'; style-src 'unsafe-inline'; "
        "img-src data: blob:; font-src data:; base-uri 'none'; form-action 'none'"
    )
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{esc(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{_CSS}</style>"
        f"<script>{plotly_js}</script></head>\n"
        f"<body>{body}\n"
        f'<script type="application/json" id="slabench-figures">{figures_json}</script>\n'
        f"<script>{_INIT_JS}</script>\n</body></html>\n"
    )


@cache
def _plotly_js() -> str:
    js = plotly.offline.get_plotlyjs()
    if "</script" in js.lower() or "<!--" in js:  # would end the inline element early
        raise RuntimeError("this plotly.js cannot be inlined verbatim; report a slabench bug")
    return js


def _sha256_b64(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


_CSS = """
:root { --fg: #1f2328; --muted: #59636e; --line: #d1d9e0; --bg: #ffffff; --panel: #f6f8fa;
  --pass: #1a7f37; --fail: #cf222e; --inc: #9a6700; --none: #59636e; }
* { box-sizing: border-box; }
body { margin: 0 auto; max-width: 1320px; padding: 24px 32px 48px; color: var(--fg);
  background: var(--bg); font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto,
  "Helvetica Neue", Arial, sans-serif; }
h1 { font-size: 22px; margin: 0; display: flex; align-items: center; gap: 12px;
  flex-wrap: wrap; }
h2 { font-size: 17px; margin: 32px 0 10px; padding-bottom: 4px;
  border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 0 0 6px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  font-size: 12.5px; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: 3px 12px; border-radius: 999px; color: #fff;
  font-size: 15px; font-weight: 700; letter-spacing: 0.04em; }
.badge.PASS { background: var(--pass); } .badge.FAIL { background: var(--fail); }
.badge.INCONCLUSIVE { background: var(--inc); } .badge.none { background: var(--none); }
.badge.warn { background: var(--inc); font-size: 12px; }
.sub { color: var(--muted); margin: 6px 0 0; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px;
  margin: 16px 0 0; }
dl.meta dt { color: var(--muted); } dl.meta dd { margin: 0; overflow-wrap: anywhere; }
.warning { border: 1px solid #d4a72c; background: #fff8c5; border-radius: 6px;
  padding: 10px 14px; margin: 14px 0 0; }
.warning.bad { border-color: #ff8182; background: #ffebe9; }
table { border-collapse: collapse; margin: 6px 0 12px; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left;
  vertical-align: top; }
th { background: var(--panel); font-weight: 600; }
td.num, th.num { text-align: right; white-space: nowrap; }
tr.FAIL td { background: #ffebe9; } tr.INCONCLUSIVE td { background: #fff8c5; }
tr.regressed td { background: #ffebe9; } tr.improved td { background: #dafbe1; }
tr.disturbed td, tr.saturated td { background: #ffebe9; }
td { overflow-wrap: anywhere; max-width: 640px; }
.grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(600px, 1fr));
  gap: 20px; }
.panel { border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px;
  min-width: 0; }
.figure { width: 100%; min-height: 380px; }
.visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden;
  clip: rect(0 0 0 0); white-space: nowrap; }
.panel { position: relative; }
.note { color: var(--muted); margin: 6px 0 0; font-size: 13px; }
ul.messages { margin: 4px 0 12px; padding-left: 20px; }
details { margin-top: 8px; } summary { cursor: pointer; color: var(--muted); }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


def inline_plotly_js() -> str:
    """plotly.js as one inline script (checked once): for pages served by the load
    generator's web UI too (``loadtests.live.web``), offline like the reports."""
    return _plotly_js()
