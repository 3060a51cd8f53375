"""The training microscope as Rich text (Train screen, `m`): the probe time-lapse (step x rank, shaded by
probability), the heads grid (layer x head, coloured by dominant type) and each type's share over the evaluations.

Plain Text, no widgets: the screen puts it in one scrolling Static, which costs one update per evaluation.
The numbers come from metrics.jsonl's EvalEvents (bert2.microscope computes them in the trainer).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

from bert2.microscope import HEAD_TYPE_NAMES, HEAD_TYPES, type_shares

TYPE_STYLE = {"previous": "#4e79a7", "next": "#59a14f", "sink": "#9c755f", "same_word": "#e15759", "broad": "#edc948"}
"""The same colours as the exported HTML page (bert2.html_export.TYPE_COLOURS)."""

SPARK = "▁▂▃▄▅▆▇█"


def shade(p: float) -> str:
    """A background from dark to bright blue by probability; white text on it."""
    p = max(0.0, min(1.0, float(p)))
    level = int(40 + 180 * p)
    return f"#ffffff on rgb({level // 4},{level // 2},{level})"


def probe_timelapse(
    history: Sequence[tuple[int, list[dict[str, Any]]]], rows: int = 8, cell: int = 10, top: int = 5
) -> Text:
    """For each probe (its first [MASK]): the last `rows` evaluations, one line each: step, then the first `top`
    tokens on a background as bright as their probability. The moment "paris" overtakes "the" is a column
    change."""
    out = Text()
    if not history:
        out.append("The probes' top-5 at every evaluation appear here.", style="dim")
        return out
    texts = [p.get("text", "") for p in history[-1][1] if "predictions" in p]
    for i, text in enumerate(texts):
        out.append((text if len(text) <= 60 else text[:59] + "…") + "\n", style="bold")
        for step, probes in list(history)[-rows:]:
            match = [p for p in probes if p.get("text") == text and p.get("predictions")]
            if not match:
                continue
            out.append(f"{step:>6} ", style="dim")
            for guess in match[0]["predictions"][0][:top]:
                token = str(guess["token"])[: cell - 1]
                out.append(f"{token:<{cell - 1}}", style=shade(guess["score"]))
                out.append(" ")
            out.append("\n")
        if i < len(texts) - 1:
            out.append("\n")
    return out


def attention_map(
    tokens: Sequence[str],
    rows: Sequence[Sequence[float]],
    title: str = "",
    cell: int = 2,
    max_tokens: int = 40,
    label: int = 8,
) -> Text:
    """One head's (T, T) attention as a shaded block: row = the token attending (its name at the left), column =
    the token attended to, brighter = more (scaled to the map's largest weight). Longer sentences are cut at
    `max_tokens`, and the title says so."""
    out = Text()
    n = min(len(tokens), max_tokens)
    if title:
        out.append(title + (f" (first {n} of {len(tokens)} tokens)" if n < len(tokens) else "") + "\n", style="dim")
    vmax = max((max(r[:n]) for r in rows[:n]), default=0.0) or 1.0
    for i in range(n):
        out.append(f"{str(tokens[i])[:label]:>{label}} ", style="bold" if i == 0 else "")
        for j in range(n):
            out.append(" " * cell, style=f"on {_heat(float(rows[i][j]) / vmax)}")
        out.append("\n")
    return out


def _heat(v: float) -> str:
    """Black through blue to white as the weight grows (readable on dark and light terminals)."""
    v = max(0.0, min(1.0, v))
    return f"rgb({int(255 * v * v)},{int(40 + 150 * v)},{int(60 + 195 * v)})"


def legend() -> Text:
    out = Text()
    for t in HEAD_TYPES:
        out.append("██", style=TYPE_STYLE[t])
        out.append(f" {HEAD_TYPE_NAMES[t]}  ")
    return out


def heads_grid(step: int, heads: Sequence[dict[str, Any]]) -> Text:
    """Layer rows x head columns; each cell the head's dominant type (colour) and score (two digits)."""
    out = Text()
    if not heads:
        out.append("Head types appear at the first evaluation (pretraining, pretrain.microscope = true).", style="dim")
        return out
    out.append(f"heads at step {step} (score ×100)\n", style="dim")
    layers = 1 + max(int(h["layer"]) for h in heads)
    per = 1 + max(int(h["head"]) for h in heads)
    cell = {(int(h["layer"]), int(h["head"])): h for h in heads}
    out.append("      " + "".join(f"h{j:<3}" for j in range(per)) + "\n", style="dim")
    for i in range(layers):
        out.append(f"L{i:<4} ", style="dim")
        for j in range(per):
            h = cell.get((i, j))
            if h is None:
                out.append("    ")
                continue
            score = min(99, int(round(100 * float(h["score"]))))
            out.append(f"{score:>3}", style=f"bold #ffffff on {TYPE_STYLE.get(h['type'], '#888888')}")
            out.append(" ")
        out.append("\n")
    return out


def share_lines(history: Sequence[tuple[int, list[dict[str, Any]]]], width: int = 40) -> Text:
    """Each type's share of the heads over the evaluations, as one sparkline per type (newest at the right)."""
    out = Text()
    if not history:
        return out
    recent = list(history)[-width:]
    shares = [type_shares(h) for _, h in recent]
    out.append(f"type shares, steps {recent[0][0]}–{recent[-1][0]}\n", style="dim")
    for t in HEAD_TYPES:
        line = "".join(SPARK[min(len(SPARK) - 1, int(s[t] * (len(SPARK) - 1) + 0.5))] for s in shares)
        out.append(f"{HEAD_TYPE_NAMES[t]:<17}", style=TYPE_STYLE[t])
        out.append(line, style=TYPE_STYLE[t])
        out.append(f" {shares[-1][t]:.0%}\n")
    return out


def microscope_text(
    probe_history: Sequence[tuple[int, list[dict[str, Any]]]],
    heads_history: Sequence[tuple[int, list[dict[str, Any]]]],
    rows: int = 8,
) -> Text:
    """The whole view: heads grid + legend + type shares, then the probe time-lapse."""
    out = Text()
    if heads_history:
        step, heads = heads_history[-1]
        out.append_text(heads_grid(step, heads))
        out.append_text(legend())
        out.append("\n")
        out.append_text(share_lines(heads_history))
    else:
        out.append_text(heads_grid(0, []))
        out.append("\n")
    out.append("\n")
    out.append_text(probe_timelapse(probe_history, rows))
    return out


def frames_of(
    probe_history: Sequence[tuple[int, list[dict[str, Any]]]],
    heads_history: Sequence[tuple[int, list[dict[str, Any]]]],
    evals: Sequence[tuple[int, dict[str, float], bool]],
) -> list[dict[str, Any]]:
    """The run's evaluations in `bert2 timelapse`'s frame shape, for the HTML export (ctrl+e)."""
    probes = dict(probe_history)
    heads = dict(heads_history)
    losses = {step: m.get("loss") for step, m, _ in evals}
    return [
        {
            "step": step,
            "path": "",
            "probes": [p for p in probes.get(step, []) if "predictions" in p],
            "heads": heads.get(step, []),
            "loss": losses.get(step),
        }
        for step in sorted(set(probes) | set(heads))
    ]
