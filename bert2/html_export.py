"""Standalone HTML pages of the training microscope's views: a probe time-lapse (step x rank, shaded by
probability), the heads grid (layer x head, coloured by dominant type) per step, the type shares over steps and
one attention map. One file, inline CSS, no script and nothing fetched: it opens offline in any browser and can
be mailed or attached to a report (`bert2 timelapse --html FILE`, ctrl+e in the workbench).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from typing import Any

from .microscope import HEAD_TYPE_NAMES, HEAD_TYPES, type_shares

TYPE_COLOURS = {"previous": "#4e79a7", "next": "#59a14f", "sink": "#9c755f", "same_word": "#e15759", "broad": "#edc948"}
"""One colour per head type, the same in the page and in the workbench's grid legend."""

_CSS = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; } h3 { font-size: 1em; }
table { border-collapse: collapse; margin: .5em 0 1em; }
td, th { border: 1px solid #ddd; padding: 2px 6px; text-align: left; font-size: 12px; }
th { background: #f4f4f4; }
.cell { font-family: ui-monospace, monospace; }
.grid td { width: 3.2em; text-align: center; color: #fff; }
.legend span { display: inline-block; padding: 1px 8px; margin-right: 6px; color: #fff; border-radius: 3px; }
.attn td { width: 1.1em; height: 1.1em; padding: 0; border: 1px solid #fff; }
.attn th { font-weight: normal; font-family: ui-monospace, monospace; }
.note { color: #666; font-size: 12px; }
.bar { display: inline-block; height: 10px; vertical-align: middle; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text), quote=True)


def _shade(p: float) -> str:
    """A blue background whose strength is the probability (white at 0)."""
    p = max(0.0, min(1.0, float(p)))
    return f"background: rgba(31, 119, 180, {0.08 + 0.85 * p:.3f}); color: {'#fff' if p > 0.5 else '#000'}"


def legend() -> str:
    spans = "".join(f'<span style="background:{TYPE_COLOURS[t]}">{_e(HEAD_TYPE_NAMES[t])}</span>' for t in HEAD_TYPES)
    return f'<p class="legend">{spans}</p>'


def probe_table(frames: Sequence[dict[str, Any]], probe_index: int, mask_index: int = 0) -> str:
    """Rows: steps; columns: rank 1..k; each cell the token, shaded by its probability."""
    rows = []
    text = ""
    for f in frames:
        probes = f.get("probes") or []
        if probe_index >= len(probes) or "predictions" not in probes[probe_index]:
            continue
        text = probes[probe_index]["text"]
        preds = probes[probe_index]["predictions"]
        if mask_index >= len(preds):
            continue
        cells = "".join(
            f'<td class="cell" style="{_shade(p["score"])}" title="{p["score"]:.4f}">{_e(p["token"])} '
            f"{p['score']:.2f}</td>"
            for p in preds[mask_index]
        )
        rows.append(f"<tr><th>{_e(f.get('step'))}</th>{cells}</tr>")
    if not rows:
        return ""
    k = max(len(f["probes"][probe_index]["predictions"][mask_index]) for f in frames if f.get("probes"))
    head = "".join(f"<th>#{i + 1}</th>" for i in range(k))
    return f"<h3>{_e(text)}</h3><table><tr><th>step</th>{head}</tr>{''.join(rows)}</table>"


def heads_grid(heads: Sequence[dict[str, Any]]) -> str:
    """Layer x head, each cell coloured by its dominant type and showing its score."""
    if not heads:
        return '<p class="note">no head scores</p>'
    layers = 1 + max(int(h["layer"]) for h in heads)
    per = 1 + max(int(h["head"]) for h in heads)
    cell = {(int(h["layer"]), int(h["head"])): h for h in heads}
    head_row = "".join(f"<th>h{j}</th>" for j in range(per))
    rows = []
    for i in range(layers):
        tds = []
        for j in range(per):
            h = cell.get((i, j))
            if h is None:
                tds.append("<td></td>")
                continue
            colour = TYPE_COLOURS.get(h["type"], "#888")
            tds.append(
                f'<td style="background:{colour}" title="{_e(HEAD_TYPE_NAMES.get(h["type"], h["type"]))}">'
                f"{float(h['score']):.2f}</td>"
            )
        rows.append(f"<tr><th>layer {i}</th>{''.join(tds)}</tr>")
    return f'<table class="grid"><tr><th></th>{head_row}</tr>{"".join(rows)}</table>'


def share_table(frames: Sequence[dict[str, Any]]) -> str:
    """Each type's share of the heads at every step, as bars (the page's line chart, without a script)."""
    head = "".join(f"<th>{_e(HEAD_TYPE_NAMES[t])}</th>" for t in HEAD_TYPES)
    rows = []
    for f in frames:
        shares = type_shares(f.get("heads") or [])
        tds = "".join(
            f'<td><span class="bar" style="width:{60 * shares[t]:.0f}px;background:{TYPE_COLOURS[t]}"></span> '
            f"{shares[t]:.0%}</td>"
            for t in HEAD_TYPES
        )
        loss = f.get("loss")
        rows.append(f"<tr><th>{_e(f.get('step'))}</th><td>{'' if loss is None else f'{loss:.3f}'}</td>{tds}</tr>")
    return f"<table><tr><th>step</th><th>loss</th>{head}</tr>{''.join(rows)}</table>"


def attention_map(tokens: Sequence[str], rows: Sequence[Sequence[float]], title: str = "") -> str:
    """One head's (T, T) attention as a shaded matrix: row = the token attending, column = the token attended to."""
    head = "".join(f"<th>{_e(t)}</th>" for t in tokens)
    body = []
    for tok, row in zip(tokens, rows):
        tds = "".join(f'<td style="{_shade(v)}" title="{v:.3f}"></td>' for v in row)
        body.append(f"<tr><th>{_e(tok)}</th>{tds}</tr>")
    return f'<h3>{_e(title)}</h3><table class="attn"><tr><th></th>{head}</tr>{"".join(body)}</table>'


def page(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{_e(title)}</title><style>{_CSS}</style></head>"
        f"<body><h1>{_e(title)}</h1>{body}"
        '<p class="note">Made by bert2 (docs/watching-bert-learn.md). Standalone: no script, nothing fetched.</p>'
        "</body></html>\n"
    )


def timelapse_page(frames: Sequence[dict[str, Any]], title: str = "Watching BERT learn") -> str:
    """The whole time-lapse of a run as one page: probes over steps, type shares, heads grid per step, and the
    attention map of the last frame that carries one (its most typical head of each type)."""
    parts = [f'<p class="note">{len(frames)} checkpoints, steps {", ".join(str(f["step"]) for f in frames)}</p>']
    parts.append("<h2>Probe predictions over training</h2>")
    n_probes = max((len(f.get("probes") or []) for f in frames), default=0)
    for i in range(n_probes):
        parts.append(probe_table(frames, i))
    parts.append("<h2>Head types over training</h2>" + legend() + share_table(frames))
    for f in frames:
        parts.append(f"<h3>step {_e(f['step'])}</h3>{heads_grid(f.get('heads') or [])}")
    with_attention = [f for f in frames if f.get("attention")]
    if with_attention:
        last = with_attention[-1]
        att = last["attention"]
        parts.append(f"<h2>Attention at step {_e(last['step'])}: {_e(att.get('text', ''))}</h2>")
        for t in HEAD_TYPES:
            typed = [h for h in last.get("heads") or [] if h["type"] == t]
            if not typed:
                continue
            h = max(typed, key=lambda h: h["score"])
            rows = att["maps"][h["layer"]][h["head"]]
            parts.append(
                attention_map(
                    att["tokens"], rows, f"layer {h['layer']} head {h['head']}: {HEAD_TYPE_NAMES[t]} {h['score']:.2f}"
                )
            )
    return page(title, "".join(parts))
