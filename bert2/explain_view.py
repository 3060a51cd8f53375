"""How an Explanation (bert2/explain.py) looks: rich renderables shared by `bert2 explain` and the workbench's
Inside screen. Plain data in (the explanation's rows, lists of attention weights), rich Text and Tables out; no
torch, so the workbench imports it at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

SEGMENT_STYLES = ("cyan", "magenta")
FATE_STYLES = {"mask": "bold white on red", "random": "bold black on yellow", "keep": "bold underline green"}
FATE_MARKS = {"mask": "M", "random": "R", "keep": "K"}
SHADES = " ░▒▓█"  # attention weight from 0 to the map's maximum


def legend() -> Text:
    return Text.assemble(
        ("segment A", SEGMENT_STYLES[0]),
        "  ",
        ("segment B", SEGMENT_STYLES[1]),
        "  ",
        ("[MASK:hidden]", FATE_STYLES["mask"]),
        " 80%  ",
        ("orig→random", FATE_STYLES["random"]),
        " 10%  ",
        ("kept", FATE_STYLES["keep"]),
        " 10% of the selected tokens  ",
        ("[PAD]", "dim"),
        " ignored by attention",
    )


def token_line(row: dict[str, Any]) -> Text:
    """The example as the model received it: segment A cyan, B magenta; a [MASK] red with what it hid, a random
    replacement yellow with what it replaced, a kept-but-predicted token green; padding dim."""
    text = Text()
    pads = 0
    for tok, orig, seg, att, fate in zip(
        row["tokens"], row["original_tokens"], row["token_type_ids"], row["attention_mask"], row["fates"]
    ):
        if not att:
            pads += 1
            continue
        if fate == "mask":
            text.append(f"[MASK:{orig}]", style=FATE_STYLES["mask"])
        elif fate == "random":
            text.append(f"{orig}→{tok}", style=FATE_STYLES["random"])
        elif fate == "keep":
            text.append(tok, style=FATE_STYLES["keep"])
        else:
            text.append(tok, style=SEGMENT_STYLES[seg % 2])
        text.append(" ")
    if pads:
        text.append(f"[PAD] x {pads}", style="dim")
    return text


def position_grid(row: dict[str, Any], width: int = 120) -> Text:
    """Position by position, in blocks that fit `width`: the token the model saw, its segment, the attention
    mask, the MLM fate (M [MASK], R random, K kept, · not selected) and the label (· for -100: no loss here)."""
    cols = []
    for t, (tok, seg, att, fate, label, orig) in enumerate(
        zip(
            row["tokens"],
            row["token_type_ids"],
            row["attention_mask"],
            row["fates"],
            row["labels"],
            row["original_tokens"],
        )
    ):
        cells = [str(t), tok, "AB"[seg % 2], str(att), FATE_MARKS.get(fate, "·"), orig if label != -100 else "·"]
        cols.append((cells, seg, att, fate))
    names = ["pos", "token", "segment", "attention", "fate", "label"]
    out = Text()
    start = 0
    while start < len(cols):
        used, stop = 10, start
        while stop < len(cols):
            w = max(len(c) for c in cols[stop][0]) + 1
            if used + w > width and stop > start:
                break
            used += w
            stop += 1
        for r, name in enumerate(names):
            out.append(f"{name:>9} ", style="bold dim")
            for cells, seg, att, fate in cols[start:stop]:
                w = max(len(c) for c in cells) + 1
                style = (
                    "dim"
                    if not att
                    else FATE_STYLES[fate]
                    if (fate and r in (1, 4))
                    else SEGMENT_STYLES[seg % 2]
                    if r in (1, 2)
                    else ""
                )
                out.append(f"{cells[r]:<{w - 1}}", style=style)
                out.append(" ")
            out.append("\n")
        out.append("\n")
        start = stop
    return out


def nsp_text(row: dict[str, Any]) -> Text:
    if "nsp_label" not in row:
        return Text("NSP: off for this model (one segment, no next-sentence label)", style="dim")
    p = row.get("nsp_probability_isnext")
    guess = f"; the model says IsNext with p = {p:.3f}" if p is not None else ""
    return Text.assemble("NSP: ", (row["nsp_label"], "bold"), f" (B is {row['segment_b_source']}){guess}")


def predictions_table(row: dict[str, Any], selected: int | None = None) -> Table:
    """One line per masked position: its fate, what the model saw, the label, p(label), the token's loss and the
    top predictions. `selected` (an index into the predictions) is highlighted."""
    table = Table(show_edge=False, pad_edge=False, expand=False)
    for col in ("pos", "fate", "model saw", "label", "p(label)", "token loss", "top predictions"):
        table.add_column(col, justify="right" if col in ("pos", "p(label)", "token loss") else "left")
    for k, p in enumerate(row["predictions"]):
        top = ", ".join(f"{t['token']} {t['probability']:.2f}" for t in p["top"])
        table.add_row(
            str(p["position"]),
            Text(p["fate"], style=FATE_STYLES[p["fate"]]),
            p["input"],
            p["label"],
            f"{p['label_probability']:.3f}",
            f"{p['loss']:.3f}",
            top,
            style="reverse" if k == selected else None,
        )
    return table


def counts_text(c: dict[str, Any]) -> Text:
    return Text(
        f"the batch: {c['selected']} of {c['eligible']} maskable tokens selected ({c['selected_share']:.1%};"
        f" the rule {c['expected_share']:.0%}{'' if abs(c['expected_share'] - 0.15) < 1e-9 else ', BERT 15%'}):"
        f" {c['mask']} [MASK], {c['random']} random, {c['keep']} "
        f"kept (rule {c['expected_fates']['mask']:.0%}/{c['expected_fates']['random']:.0%}/"
        f"{c['expected_fates']['keep']:.0%})"
    )


def shapes_table(shapes: Sequence[tuple[str, Sequence[int]]]) -> Table:
    table = Table(
        "stage", "output shape", show_edge=False, pad_edge=False, title="shapes through the model", title_justify="left"
    )
    for stage, shape in shapes:
        table.add_row(stage, " x ".join(map(str, shape)))
    return table


def loss_text(loss: dict[str, Any], pairs: int) -> Text:
    mlm = (
        f"MLM = mean of {loss['masked_tokens']} token losses = {loss['mlm_token_loss_sum']:.4f} / "
        f"{loss['masked_tokens']} = {loss['mlm']:.4f}\n"
    )
    if "nsp" in loss:
        return Text.assemble(
            mlm,
            f"NSP = mean cross-entropy of {pairs} pairs = {loss['nsp']:.4f}\n",
            (f"loss = MLM + NSP = {loss['total']:.4f}", "bold"),
            " (what the trainer logs for this batch)",
        )
    return Text.assemble(mlm, (f"loss = {loss['total']:.4f}", "bold"), " (what the trainer logs for this batch)")


def alibi_text(alibi: dict[str, Any]) -> Text:
    """The ALiBi rule and the slope of each head (empty for a model without ALiBi)."""
    if not alibi:
        return Text("")
    slopes = ", ".join(f"{s:g}" for s in alibi["slopes"])
    return Text(f"ALiBi: {alibi['rule']}; slopes per head: {slopes}", style="dim")


def _shade(w: float, vmax: float) -> str:
    return SHADES[min(len(SHADES) - 1, int(round(w / vmax * (len(SHADES) - 1))))] if vmax > 0 else " "


def model_view(maps: Sequence[Sequence[Sequence[Sequence[float]]]], real: int, size: int = 12) -> Text:
    """Every layer x head as a small attention map (BertViz's model view, in characters): `maps` is (L, nh, T, T)
    for one example; each thumbnail is the real tokens' map pooled to at most size x size cells, darker = more
    attention (rows: the token attending, columns: the token attended to)."""
    L, nh = len(maps), len(maps[0])
    n = min(real, size)
    step = real / n
    out = Text()
    out.append(
        "      " + "".join(f"head {h + 1:<{n - 4}} " if n >= 6 else f"h{h + 1:<{n - 1}} " for h in range(nh)) + "\n",
        style="dim",
    )
    for layer in range(L):
        for r in range(n):
            out.append(f"L{layer + 1:<3}  " if r == 0 else "      ", style="dim")
            for h in range(nh):
                grid = maps[layer][h]
                rows = range(int(r * step), max(int(r * step) + 1, int((r + 1) * step)))
                cells = []
                for c in range(n):
                    cols = range(int(c * step), max(int(c * step) + 1, int((c + 1) * step)))
                    cells.append(sum(grid[i][j] for i in rows for j in cols) / len(rows))
                vmax = max(max(sum(grid[i][j] for j in range(real)) for i in rows), 1e-9)
                out.append("".join(_shade(v, vmax) for v in cells), style="green")
                out.append(" ")
            out.append("\n")
        out.append("\n")
    return out


def head_view(tokens: Sequence[str], weights: Sequence[float], query: int, layer: int, head: int) -> Text:
    """One head, one token: how its attention is spread over the other tokens (BertViz's head view, as bars)."""
    out = Text()
    out.append(f"layer {layer + 1}, head {head + 1}: where ", style="dim")
    out.append(tokens[query], style="bold")
    out.append(f" (position {query}) looks\n", style="dim")
    vmax = max(weights) or 1.0
    order = sorted(range(len(weights)), key=lambda j: -weights[j])[:12]
    for j in order:
        w = float(weights[j])
        out.append(f"{j:>4} {tokens[j][:14]:<14} ", style="bold" if j == query else "")
        out.append("█" * max(1, round(w / vmax * 30)) if w > 0 else "", style="cyan")
        out.append(f" {w:.3f}\n")
    return out


def render(result: Any, console: Console) -> None:
    """`bert2 explain`: every example, then the batch's counts, shapes and loss."""
    console.print(
        f"[bold]checkpoint[/] {result.checkpoint}   [bold]examples[/] {result.source}   "
        f"[bold]masking seed[/] {result.seed}"
    )
    console.print(legend())
    for b, row in enumerate(result.examples):
        where = f" (corpus example {row['corpus_index']})" if "corpus_index" in row else ""
        console.rule(f"example {b + 1} of {len(result.examples)}{where}")
        console.print(token_line(row))
        real = sum(row["attention_mask"])
        console.print(
            f"[dim]{real} real tokens + {len(row['tokens']) - real} padding; labels: -100 at "
            f"{len(row['tokens']) - len(row['predictions'])} positions, the original id at "
            f"{len(row['predictions'])}[/]"
        )
        console.print(nsp_text(row))
        if row["predictions"]:
            console.print(predictions_table(row))
    console.rule("the batch")
    console.print(counts_text(result.counts))
    console.print(shapes_table(result.shapes))
    console.print(loss_text(result.loss, len(result.examples)))
    if result.alibi:
        console.print(alibi_text(result.alibi))
