"""Standalone HTML pages of the training microscope's views: a probe time-lapse (step x rank, shaded by
probability), the heads grid (layer x head, coloured by dominant type) per step, the type shares over steps and
one attention map. One file, inline CSS, no script and nothing fetched: it opens offline in any browser and can
be mailed or attached to a report (`bert2 timelapse --html FILE`, ctrl+e in the workbench).
"""

from __future__ import annotations

import html
import os
import time
from collections.abc import Sequence
from pathlib import Path
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
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; align-items: flex-start; }
.thumbs figure { margin: 0; } .thumbs figcaption { font-size: 11px; color: #666; }
.thumb td { width: 5px; height: 5px; padding: 0; border: 0; }
.side { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; }
.fate-mask { background: #fde2b8; } .fate-random { background: #f8c4c4; } .fate-keep { background: #cde8cd; }
"""

EXPORT_DIR = "exports"
"""Where the workbench's ctrl+e writes its pages: `<paths.root>/exports/` (beside the checkpoints, never in them)."""


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


# ---------------------------------------------------------------------------------------------- writing files
def write_new(directory: str | os.PathLike, stem: str, text: str) -> Path:
    """Write `text` to `directory/stem-YYYYmmdd-HHMMSS.html` and return the path. Never over an existing file:
    the file is opened with mode "x" and a name already taken (two exports in one second) gets -2, -3, ….
    Raises OSError when the directory cannot be made or written."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    base = f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}"
    for n in range(1, 1000):
        path = folder / (f"{base}.html" if n == 1 else f"{base}-{n}.html")
        try:
            with open(path, "x", encoding="utf-8") as f:
                f.write(text)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"{folder}: every name {base}[-N].html is taken")


# ------------------------------------------------------------------------------------------- the Inside views
def _pooled(grid: Sequence[Sequence[float]], real: int, size: int) -> list[list[float]]:
    """A (real, real) attention map averaged down to at most size x size cells (rows keep summing to ~1)."""
    n = min(real, size)
    step = real / n
    out = []
    for r in range(n):
        rows = range(int(r * step), max(int(r * step) + 1, int((r + 1) * step)))
        line = []
        for c in range(n):
            cols = range(int(c * step), max(int(c * step) + 1, int((c + 1) * step)))
            line.append(sum(grid[i][j] for i in rows for j in cols) / len(rows))
        out.append(line)
    return out


def model_view(maps: Sequence[Sequence[Sequence[Sequence[float]]]], real: int, size: int = 0) -> str:
    """Every layer x head as a small shaded map of the real tokens' attention (BertViz's model view), pooled to
    at most size x size cells (default 32, or 16 beyond 16 heads) so that a BERT-Base page (144 heads) stays
    near 2 MB; `maps` is (L, nh, T, T)."""
    size = size or (32 if sum(len(heads) for heads in maps) <= 16 else 16)
    parts = []
    for layer, heads in enumerate(maps):
        figures = []
        for h, grid in enumerate(heads):
            pooled = _pooled(grid, real, size)
            vmax = max(max(row) for row in pooled) or 1.0
            body = "".join(  # background only: these cells hold no text
                "<tr>"
                + "".join(f'<td style="background:rgba(31,119,180,{0.08 + 0.85 * v / vmax:.2f})"></td>' for v in row)
                + "</tr>"
                for row in pooled
            )
            figures.append(
                f'<figure><table class="thumb">{body}</table><figcaption>layer {layer + 1} head {h + 1}'
                "</figcaption></figure>"
            )
        parts.append(f'<div class="thumbs">{"".join(figures)}</div>')
    return "".join(parts)


def head_view(tokens: Sequence[str], weights: Sequence[float], query: int, layer: int, head: int) -> str:
    """One head, one token: where it looks, as bars (the Inside screen's head view)."""
    vmax = max(weights) or 1.0
    rows = "".join(
        f"<tr><th>{j}</th><td class='cell'>{_e(tokens[j])}</td><td><span class='bar' style='width:"
        f"{200 * float(weights[j]) / vmax:.0f}px;background:#1f77b4'></span> {float(weights[j]):.3f}</td></tr>"
        for j in sorted(range(len(weights)), key=lambda j: -weights[j])
    )
    return (
        f"<h3>layer {layer + 1}, head {head + 1}: where {_e(tokens[query])} (position {query}) looks</h3>"
        f"<table><tr><th>pos</th><th>token</th><th>attention</th></tr>{rows}</table>"
    )


def inside_page(
    checkpoint: str,
    source: str,
    row: dict[str, Any],
    maps: Sequence[Sequence[Sequence[Sequence[float]]]] | None,
    layer: int = 0,
    head: int = 0,
    token: int = 0,
    loss: dict[str, Any] | None = None,
) -> str:
    """One example of the Inside screen (or `bert2 explain --html`): its tokens and their fates, the predictions
    at the masked positions, the head view of the chosen token and the model view of every layer x head.
    `row` is one of Explanation.examples; `maps` that example's (L, nh, T, T) attention (None: not recorded)."""
    real = sum(row["attention_mask"])
    tokens = row["tokens"][:real]
    cells = "".join(
        f'<td class="cell fate-{_e(fate)}" title="{_e(fate)}">{_e(tok)}'
        + (f"<br><small>{_e(orig)}</small>" if fate in ("mask", "random", "keep") else "")
        + "</td>"
        for tok, orig, fate in zip(tokens, row["original_tokens"][:real], row["fates"][:real])
    )
    segs = "".join(f"<td>{'AB'[int(s)] if int(s) < 2 else s}</td>" for s in row["token_type_ids"][:real])
    parts = [
        f'<p class="note">checkpoint {_e(checkpoint)} · examples: {_e(source)}</p>',
        "<h2>The tokens the model saw</h2>",
        '<p class="note">coloured: selected for MLM (orange [MASK], red a random token, green kept); below it the '
        "original token</p>",
        f"<table><tr><th>token</th>{cells}</tr><tr><th>segment</th>{segs}</tr></table>",
    ]
    preds = row.get("predictions") or []
    if preds:
        body = "".join(
            f"<tr><td>{p['position']}</td><td>{_e(p['fate'])}</td><td class='cell'>{_e(p['input'])}</td>"
            f"<td class='cell'>{_e(p['label'])}</td><td>{p['label_probability']:.3f}</td><td>{p['loss']:.3f}</td>"
            "<td>" + ", ".join(f"{_e(t['token'])} {t['probability']:.2f}" for t in p["top"]) + "</td></tr>"
            for p in preds
        )
        parts.append(
            "<h2>Predictions at the masked positions</h2><table><tr><th>pos</th><th>fate</th><th>model saw</th>"
            f"<th>label</th><th>p(label)</th><th>token loss</th><th>top predictions</th></tr>{body}</table>"
        )
    if loss:
        parts.append(f"<p>batch loss {float(loss['total']):.4f} (MLM {float(loss['mlm']):.4f})</p>")
    if maps is not None:
        query = preds[min(token, len(preds) - 1)]["position"] if preds else 0
        parts.append("<h2>Head view</h2>")
        parts.append(head_view(tokens, maps[layer][head][query][:real], query, layer, head))
        parts.append(attention_map(tokens, [r[:real] for r in maps[layer][head][:real]], "its whole map"))
        parts.append(
            "<h2>Model view</h2><p class='note'>every layer x head: rows are the token attending, columns the "
            "token attended to, darker = more (pooled to at most 32 x 32 cells, 16 x 16 beyond 16 heads)</p>"
        )
        parts.append(model_view(maps, real))
    return page("Inside: one example, from text to loss", "".join(parts))


# ---------------------------------------------------------------------------------- the Checkpoints scrub view
def loss_svg(
    train: Sequence[tuple[float, float]],
    evals: Sequence[tuple[float, float]] = (),
    mark: float | None = None,
    width: int = 640,
    height: int = 200,
) -> str:
    """The loss history as an inline SVG (no script): the train curve, eval points, and a line at step `mark`."""
    points = list(train) + list(evals)
    if not points:
        return '<p class="note">no loss history recorded</p>'
    xs = [p[0] for p in points] + ([mark] if mark is not None else [])
    ys = [p[1] for p in points]
    x0, x1 = min(xs), max(xs) or 1.0
    y0, y1 = min(ys), max(ys)
    pad = 30

    def x(v: float) -> float:
        return pad + (width - 2 * pad) * ((v - x0) / ((x1 - x0) or 1.0))

    def y(v: float) -> float:
        return height - pad - (height - 2 * pad) * ((v - y0) / ((y1 - y0) or 1.0))

    line = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in train)
    dots = "".join(f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="3" fill="#e15759"/>' for s, v in evals)
    marker = (
        f'<line x1="{x(mark):.1f}" y1="{pad - 10}" x2="{x(mark):.1f}" y2="{height - pad}" stroke="#edc948" '
        f'stroke-width="2"/><text x="{x(mark) + 4:.1f}" y="{pad - 12}" font-size="11">step {mark:g}</text>'
        if mark is not None
        else ""
    )
    axes = (
        f'<text x="2" y="{y(y1) + 4:.1f}" font-size="10">{y1:.3f}</text>'
        f'<text x="2" y="{y(y0) + 4:.1f}" font-size="10">{y0:.3f}</text>'
        f'<text x="{pad}" y="{height - 8}" font-size="10">step {x0:g}</text>'
        f'<text x="{width - pad - 50}" y="{height - 8}" font-size="10">step {x1:g}</text>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="loss history"><rect width="{width}" height="{height}" fill="#fafafa"/>'
        f'<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{line}"/>{dots}{marker}{axes}</svg>'
        '<p class="note">blue: train loss; red dots: evaluation loss; yellow: this checkpoint</p>'
    )


def scrub_page(
    frame: dict[str, Any],
    train: Sequence[tuple[float, float]] = (),
    evals: Sequence[tuple[float, float]] = (),
    position: str = "",
    layer: int = 0,
    head: int = 0,
) -> str:
    """One frame of the Checkpoints screen's time-lapse: the loss curve marked at its step, the probes' top-k,
    the heads grid and the attention map of the learner's sentence in head (layer, head) — frame["attention"]
    as `bert2.timelapse.frame(attention=True)` makes it: {"text", "tokens", "maps": (L, nh, T, T)}."""
    step = frame.get("step")
    parts = [
        f'<p class="note">{_e(frame.get("path", ""))} {_e(position)}</p>',
        loss_svg(train, evals, float(step) if isinstance(step, (int, float)) else None),
        '<div class="side"><div>',
        "<h2>Probe predictions</h2>",
    ]
    for i in range(len(frame.get("probes") or [])):
        parts.append(probe_table([frame], i))
    parts.append("</div><div><h2>Head types</h2>" + legend() + heads_grid(frame.get("heads") or []) + "</div>")
    att = frame.get("attention")
    if att:
        typed = {(int(h["layer"]), int(h["head"])): h for h in frame.get("heads") or []}.get((layer, head))
        kind = f" ({HEAD_TYPE_NAMES.get(typed['type'], typed['type'])} {typed['score']:.2f})" if typed else ""
        parts.append(
            "<div><h2>Attention</h2>"
            + attention_map(att["tokens"], att["maps"][layer][head], f"layer {layer} head {head}{kind}: {att['text']}")
            + "</div>"
        )
    parts.append("</div>")
    return page(f"Checkpoint time-lapse: step {step}", "".join(parts))
