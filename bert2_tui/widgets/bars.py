"""Rich renderables for predictions: probability bars and attention heat maps (no plotting library needed)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.text import Text

BLOCKS = " ▏▎▍▌▋▊▉█"


def bar(fraction: float, width: int) -> str:
    """A horizontal bar `width` cells wide filled to `fraction`, with eighth-cell resolution."""
    fraction = min(max(float(fraction), 0.0), 1.0)
    eighths = int(round(fraction * width * 8))
    full, rest = divmod(eighths, 8)
    s = "█" * full + (BLOCKS[rest] if rest and full < width else "")
    return s.ljust(width)


def prob_rows(
    items: Sequence[tuple[str, float]], width: int = 24, label_width: int = 14, style: str = "bold cyan"
) -> Text:
    """One line per (label, probability): label, bar, percentage."""
    text = Text()
    for i, (label, score) in enumerate(items):
        label = str(label)
        if len(label) > label_width:
            label = label[: label_width - 1] + "…"
        text.append(f"{label:<{label_width}} ", style="bold" if i == 0 else "")
        text.append(bar(score, width), style=style if i == 0 else "cyan")
        text.append(f" {score * 100:5.1f}%\n", style="dim" if i else "")
    return text


def fill_mask_text(predictions: list[list[dict[str, Any]]], width: int = 24, label_width: int = 14) -> Text:
    """Top-k per [MASK], each block headed by its mask number."""
    out = Text()
    for i, preds in enumerate(predictions, 1):
        if len(predictions) > 1:
            out.append(("\n" if i > 1 else "") + f"[MASK] #{i}\n", style="bold magenta")
        out.append_text(prob_rows([(p["token"], float(p["score"])) for p in preds], width, label_width))
    return out


HEAT = ["#1a1b26", "#23304a", "#2c466e", "#345d92", "#3d75b5", "#4b8fd1", "#6aa9df", "#8cc3ea", "#b3dbf3", "#e0f1fb"]


def heat_color(value: float, vmax: float) -> str:
    if vmax <= 0:
        return HEAT[0]
    i = int(min(max(value / vmax, 0.0), 1.0) * (len(HEAT) - 1) + 0.5)
    return HEAT[i]


def heatmap_text(
    tokens: Sequence[str],
    weights: Sequence[Sequence[float]],
    cell: int = 3,
    label_width: int = 12,
    max_tokens: int = 40,
) -> Text:
    """Rows = query tokens (who attends), columns = key tokens (attended to), colour = attention weight."""
    n = min(len(tokens), max_tokens)
    toks = [t if len(t) <= label_width else t[: label_width - 1] + "…" for t in tokens[:n]]
    vmax = max((max(row[:n]) for row in weights[:n]), default=1.0) or 1.0
    out = Text()
    # column header: key token indices, then a legend of index -> token below the map
    out.append(" " * (label_width + 1))
    for j in range(n):
        out.append(f"{j:>{cell}}", style="dim")
    out.append("\n")
    for i in range(n):
        out.append(f"{toks[i]:>{label_width}} ", style="bold")
        for j in range(n):
            w = float(weights[i][j])
            bright = vmax > 0 and w / vmax > 0.6
            label = f"{int(round(w * 100)):>{cell}}" if cell >= 3 else " " * cell  # weight in percent
            out.append(label, style=f"{'black' if bright else 'grey62'} on {heat_color(w, vmax)}")
        out.append(f" {i}\n", style="dim")
    if len(tokens) > n:
        out.append(f"(first {n} of {len(tokens)} tokens)\n", style="dim italic")
    legend = "  ".join(f"{j}:{t}" for j, t in enumerate(toks))
    out.append(legend + "\n", style="dim")
    out.append("low ", style="dim")
    for c in HEAT:
        out.append("  ", style=f"on {c}")
    out.append(f" high (max {vmax:.2f}; cells show weight x 100)", style="dim")
    return out


def filled_sentence(text: str, predictions: list[list[dict[str, Any]]], mask: str = "[MASK]") -> Text:
    """The input with each [MASK] replaced by its top prediction, highlighted."""
    out = Text()
    pieces = text.split(mask)
    for i, piece in enumerate(pieces):
        out.append(piece)
        if i < len(pieces) - 1:
            if i < len(predictions) and predictions[i]:
                out.append(str(predictions[i][0]["token"]), style="bold black on cyan")
            else:
                out.append(mask, style="bold magenta")
    return out
