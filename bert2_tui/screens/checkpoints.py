"""Checkpoints screen: the six directories as a tree, metadata of the selected checkpoint and its loss history.

Everything here reads trainer_state.json only (list_checkpoints / read_state), never the weights, so listing is
instant even for large models. The list refreshes when the trainer reports a saved checkpoint.

Left/right start the time-lapse: the selected checkpoint's run in step order, each frame (probe guesses, heads
grid, one head's attention map of the sentence in the input box) read by the playground's Predictor in a worker,
with the step marked on the loss curve; h picks the next head, ctrl+e saves the frame as an HTML page.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Input, Static, Tree
from textual.widgets.tree import TreeNode

from bert2.checkpoint import CheckpointInfo, list_checkpoints, read_state
from bert2.compress import DISTILL_TEACHERS, PRUNE_TASKS
from bert2.config import KINDS, STAGES
from bert2.errors import CheckpointError

from ..messages import (
    CheckpointDeleted,
    CheckpointsChanged,
    DistillFrom,
    FinetuneFrom,
    PruneFrom,
    ResumeFrom,
    UseInPlayground,
)
from ..widgets.charts import SeriesChart
from ..widgets.nav import KeysFooter, NavBar
from .dialogs import ConfirmScreen
from .exporting import save_page

if TYPE_CHECKING:
    from ..app import Bert2App


def _leaves(node: TreeNode) -> list[TreeNode]:
    out = []
    for child in node.children:
        out.extend(_leaves(child) if child.children else [child])
    return out


def human_size(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def headline_metric(metrics: dict[str, float]) -> str:
    for key in ("loss", "accuracy", "f1", "bleu"):
        if isinstance(metrics.get(key), (int, float)):
            return f"{key} {metrics[key]:.4g}"
    return ""


def history_series(state: dict[str, Any]) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """Train loss points and eval loss points from a trainer_state.json's log_history."""
    train, evals = [], []
    for entry in state.get("log_history") or []:
        if not isinstance(entry, dict) or "step" not in entry:
            continue
        if isinstance(entry.get("loss"), (int, float)):
            train.append((int(entry["step"]), float(entry["loss"])))
        ev = entry.get("eval")
        if isinstance(ev, dict) and isinstance(ev.get("loss"), (int, float)):
            evals.append((int(entry["step"]), float(ev["loss"])))
    return train, evals


class CheckpointsScreen(Screen):
    """Tree of saved_model/{transformer/pretrain,bert/finetuning}/{checkpoint,best,final} with actions."""

    TITLE = "Checkpoints"
    BINDINGS = [
        Binding("p", "use", "Playground", id="checkpoints.use", tooltip="Load the checkpoint into the playground"),
        Binding("r", "resume", "Resume", id="checkpoints.resume", tooltip="Resume training from this checkpoint"),
        Binding(
            "f",
            "finetune",
            "Fine-tune",
            id="checkpoints.finetune",
            tooltip="Fine-tune (task from the config) starting from this pretraining checkpoint",
        ),
        Binding(
            "t",
            "distill",
            "Distill",
            id="checkpoints.distill",
            tooltip="Train a smaller student with this checkpoint as its teacher ([distill] settings)",
        ),
        Binding(
            "k",
            "prune",
            "Prune",
            id="checkpoints.prune",
            tooltip="Remove the least important quarter of its attention heads (importance, curve, speed-up)",
        ),
        Binding("d,delete", "delete", "Delete", id="checkpoints.delete", tooltip="Delete the checkpoint (asks first)"),
        Binding("ctrl+r", "refresh", "Refresh", id="checkpoints.refresh", tooltip="Read the directories again"),
        Binding(
            "left",
            "scrub(-1)",
            "Earlier",
            id="checkpoints.scrub_back",
            show=False,
            tooltip="Time-lapse: the same run's previous checkpoint, with its probe guesses and head types",
        ),
        Binding(
            "right",
            "scrub(1)",
            "Later",
            id="checkpoints.scrub_forward",
            show=False,
            tooltip="Time-lapse: the same run's next checkpoint, with its probe guesses and head types",
        ),
        Binding(
            "h",
            "next_head",
            "Head",
            id="checkpoints.head",
            show=False,
            tooltip="Time-lapse: show the next attention head's map of your sentence",
        ),
        Binding(
            "ctrl+e",
            "export",
            "Export",
            id="checkpoints.export",
            show=False,
            tooltip="Save the time-lapse frame (loss curve, probes, heads grid, attention map) as a standalone HTML page",
        ),
        Binding(
            "escape",
            "release",
            "Back to the list",
            id="checkpoints.release",
            show=False,
            tooltip="Leave the sentence box (the arrows work the list and the time-lapse again); close the time-lapse",
        ),
    ]

    def __init__(self) -> None:
        super().__init__(id="checkpoints-screen")
        self.infos: list[CheckpointInfo] = []
        self.selected: CheckpointInfo | None = None
        self.scrubbing = False
        """Left/right was pressed: the detail shows the selected checkpoint's time-lapse frame and its step."""
        self.frames: dict[tuple[str, str], Any] = {}
        """(path, sentence) -> its time-lapse frame (bert2.timelapse.frame with attention), computed once in a
        worker."""
        self.att_layer = 0
        self.att_head = 0
        self.lapse_position = ""
        """"3/5": where the selected checkpoint is in its run, for the border title and the export."""

    @property
    def bert2(self) -> Bert2App:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield NavBar("checkpoints")
        with Horizontal(id="ckpt-body"):
            tree: Tree[CheckpointInfo | None] = Tree(self.bert2.config.paths.root, id="ckpt-tree")
            tree.show_root = True
            tree.guide_depth = 3
            yield tree
            with Vertical(id="ckpt-detail"):
                yield Static("", id="ckpt-info")
                with Horizontal(id="ckpt-lapse"):
                    yield Static("", id="ckpt-frame")
                    with Vertical(id="ckpt-attn-pane"):
                        yield Input(
                            self.bert2.probes[0] if self.bert2.probes else "",
                            placeholder="a sentence for the attention map (Enter)",
                            id="ckpt-sentence",
                        )
                        yield Static("", id="ckpt-attn")
                yield SeriesChart("loss history", id="ckpt-chart", empty_text="select a checkpoint")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.reload()
        self.query_one("#ckpt-tree", Tree).focus()

    def on_resize(self) -> None:
        # Below 110 columns the tree narrows and the time-lapse shows the top 3 guesses; below 32 rows the
        # checkpoint's metadata gives way to the time-lapse while scrubbing (its step is on the chart's marker).
        self.set_class(self.size.width < 110, "narrow")
        self.set_class(self.size.height < 32, "short")
        if self.selected is not None and self.scrubbing:
            self._show_frame(self.selected)

    def action_release(self) -> None:
        """Escape: out of the sentence box back to the list; from the list, close the time-lapse."""
        tree = self.query_one("#ckpt-tree", Tree)
        if self.focused is not tree:
            tree.focus()
        elif self.scrubbing:
            self.scrubbing = False
            self.set_class(False, "scrubbing")
            if self.selected is not None:
                self.show(self.selected)

    @on(Input.Submitted, "#ckpt-sentence")
    def _sentence_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.query_one("#ckpt-tree", Tree).focus()
        if self.selected is not None:
            self.scrubbing = True
            self.set_class(True, "scrubbing")
            self._show_frame(self.selected)

    def on_screen_resume(self) -> None:
        self.reload()

    def on_checkpoints_changed(self, message: CheckpointsChanged) -> None:
        self.reload()

    # ------------------------------------------------------------------------------------------- listing
    def reload(self) -> None:
        """List the six directories again, keeping the selection by path where it still exists."""
        root = self.bert2.config.paths.root
        keep = self.selected.path if self.selected else None
        try:
            self.infos = list_checkpoints(root)
        except OSError as exc:
            self.infos = []
            self.notify(f"cannot read {root}: {exc}", severity="error")
        tree: Tree[CheckpointInfo | None] = self.query_one("#ckpt-tree", Tree)
        tree.clear()
        tree.root.set_label(Text(root, style="bold"))
        tree.root.expand()
        select_node: TreeNode | None = None
        first_leaf: TreeNode | None = None
        for kind, parts in KINDS.items():
            kind_node = tree.root.add(Text("/".join(parts), style="bold"), expand=True)
            for stage in STAGES:
                items = [i for i in self.infos if i.kind == kind and i.stage == stage]
                label = Text(stage, style="bold cyan")
                label.append(f"  ({len(items)})" if items else "  (empty)", style="dim")
                stage_node = kind_node.add(label, expand=True)
                for info in reversed(items):  # newest first
                    leaf = stage_node.add_leaf(self._leaf_label(info), data=info)
                    first_leaf = first_leaf or leaf
                    if info.path == keep:
                        select_node = leaf
        target = select_node or first_leaf
        if target is not None:
            self.call_after_refresh(self._select, target)
        else:
            self.show(None)

    def _select(self, node: TreeNode) -> None:
        tree = self.query_one("#ckpt-tree", Tree)
        if node.tree is tree and node.line >= 0:
            tree.move_cursor(node)
        self.show(node.data)

    @staticmethod
    def _leaf_label(info: CheckpointInfo) -> Text:
        text = Text(Path(info.path).name)
        if info.valid:
            metric = headline_metric(info.metrics)
            if metric:
                text.append(f"  {metric}", style="green")
            text.append("  ✓", style="green")
        else:
            text.append("  ✗ invalid", style="bold red")
        return text

    @on(Tree.NodeHighlighted, "#ckpt-tree")
    def _highlighted(self, event: Tree.NodeHighlighted) -> None:
        self.show(event.node.data)

    @on(Tree.NodeSelected, "#ckpt-tree")
    def _selected(self, event: Tree.NodeSelected) -> None:
        if event.node.data is not None:
            self.action_use()

    def show(self, info: CheckpointInfo | None) -> None:
        self.selected = info
        panel = self.query_one("#ckpt-info", Static)
        chart = self.query_one("#ckpt-chart", SeriesChart)
        if info is None:
            n = len(self.infos)
            panel.update(
                Text(
                    f"{n} checkpoint{'s' * (n != 1)} under {self.bert2.config.paths.root}.\n"
                    "Select one: p playground · r resume · f fine-tune · t distill · k prune · d delete",
                    style="dim",
                )
                if n
                else Text("No checkpoints yet. Start a job on the Train screen (2, then s).", style="dim")
            )
            chart.set_series({})
            return
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold", no_wrap=True)
        table.add_column(overflow="fold")
        table.add_row("path", info.path)
        table.add_row("kind / stage", f"{info.kind} / {info.stage}" + (f" · task {info.task}" if info.task else ""))
        table.add_row("step", str(info.step))
        table.add_row("created", info.created or "–")
        table.add_row("size", human_size(info.size_bytes))
        table.add_row(
            "valid", Text("yes", style="green") if info.valid else Text(f"invalid: {info.error}", style="red")
        )
        if info.note:
            table.add_row("note", Text(info.note, style="yellow"))
        if info.metrics:
            table.add_row("metrics", "  ".join(f"{k} {v:.4g}" for k, v in info.metrics.items()))
        if self.bert2.is_protected(info.path):
            table.add_row("", Text("written by the running job", style="yellow"))
        panel.update(table)
        train: list = []
        evals: list = []
        if info.valid:
            try:
                train, evals = history_series(read_state(Path(info.path)))
            except CheckpointError:
                pass
        chart.empty_text = "no history recorded"
        marks = {f"step {info.step}": float(info.step)} if self.scrubbing and train else None
        chart.set_series({"train": train}, markers={"eval": evals} if evals else None, marks=marks)
        self._show_frame(info)

    # ------------------------------------------------------------------------------------------ time-lapse
    def action_scrub(self, delta: int) -> None:
        """Move to the previous / next checkpoint of the selected one's run (bert2.timelapse.run_checkpoints)."""
        from bert2.timelapse import run_checkpoints

        info = self._need()
        if info is None:
            return
        if info.kind != "pretrain":
            self.notify("the time-lapse reads pretraining runs", severity="warning")
            return
        try:
            lapse = [str(p) for p in run_checkpoints(Path(info.path))]
        except CheckpointError as exc:
            self.notify(str(exc), severity="error")
            return
        here = lapse.index(info.path) if info.path in lapse else 0
        target = lapse[max(0, min(len(lapse) - 1, here + delta))]
        self.scrubbing = True
        self.set_class(True, "scrubbing")
        self.lapse_position = f"{lapse.index(target) + 1}/{len(lapse)}"
        tree = self.query_one("#ckpt-tree", Tree)
        leaf = next((n for n in _leaves(tree.root) if n.data is not None and n.data.path == target), None)
        if leaf is not None and leaf.data is not info:
            self._select(leaf)
        else:
            self.show(info)

    @property
    def sentence(self) -> str:
        text = self.query_one("#ckpt-sentence", Input).value.strip()
        return text or (self.bert2.probes[0] if self.bert2.probes else "The cat sat on the mat.")

    def _show_frame(self, info: CheckpointInfo) -> None:
        lapse = self.query_one("#ckpt-lapse")
        lapse.display = self.scrubbing
        panel = self.query_one("#ckpt-frame", Static)
        attn = self.query_one("#ckpt-attn", Static)
        if not self.scrubbing or not info.valid or info.kind != "pretrain":
            panel.update("")
            attn.update("")
            return
        frame = self.frames.get((info.path, self.sentence))
        if frame is None:
            panel.update(Text(f"reading {Path(info.path).name}…", style="dim"))
            self._compute_frame(info.path, tuple(self.bert2.probes), self.sentence)
            return
        from ..widgets.microscope import heads_grid, probe_timelapse

        text = Text()
        if frame.get("error"):
            text.append(frame["error"], style="yellow")
            panel.update(text)
            attn.update("")
            return
        heads_per_layer = 1 + max((int(h["head"]) for h in frame["heads"]), default=7)
        top, cell, att_cell, label, max_tokens, stacked = self._fit(
            len((frame.get("attention") or {}).get("tokens") or []), heads_per_layer
        )
        lapse.set_class(stacked, "stacked")
        text.append_text(probe_timelapse([(frame["step"], frame["probes"])], rows=1, cell=cell, top=top))
        text.append("\n")
        text.append_text(heads_grid(frame["step"], frame["heads"]))
        panel.update(text)
        attn.update(self._attention_text(frame, att_cell, label, max_tokens))
        lapse.border_title = f"time-lapse {self.lapse_position} · step {frame['step']} (h head, ctrl+e export)"

    def _fit(self, tokens: int, heads: int = 8) -> tuple[int, int, int, int, int, bool]:
        """How the frame fits the detail pane's width: (top-k shown, probe cell width, map cell width, token label
        width, tokens in the map, stacked). Beside the probes and heads when both fit (wide: top 5 and 2-column
        cells); else the map goes below them with the pane's whole width (stacked), so it is never cut off at the
        right; at most 12 tokens below 32 rows."""
        width = self.query_one("#ckpt-detail").size.width or max(40, self.size.width - 30)
        rows_cap = 12 if self.has_class("short") else 40
        n = min(tokens, rows_cap)
        grid = 6 + 4 * heads  # the heads grid's width: "L0    " and 4 columns a head
        for top, cell, att_cell, label in ((5, 10, 2, 8), (3, 8, 2, 8)):
            if max(7 + top * cell, grid) + 2 + label + 1 + n * att_cell <= width:
                return top, cell, att_cell, label, rows_cap, False
        top, cell = (5, 10) if 7 + 5 * 10 <= width else (3, 8)
        att_cell = 2 if 8 + 1 + n * 2 <= width - 2 else 1
        return top, cell, att_cell, 8, max(4, min(rows_cap, (width - 11) // att_cell)), True

    def _attention_text(self, frame: dict[str, Any], cell: int, label: int, max_tokens: int) -> Text:
        from ..widgets.microscope import attention_map

        att = frame.get("attention")
        if not att:
            return Text("")
        maps = att["maps"]  # (L, nh, T, T)
        self.att_layer = min(self.att_layer, len(maps) - 1)
        self.att_head = min(self.att_head, len(maps[self.att_layer]) - 1)
        typed = {(int(h["layer"]), int(h["head"])): h for h in frame["heads"]}.get((self.att_layer, self.att_head))
        kind = f" {typed['type']} {typed['score']:.2f}" if typed else ""
        return attention_map(
            att["tokens"],
            maps[self.att_layer][self.att_head],
            f"L{self.att_layer} h{self.att_head}{kind}",
            cell=cell,
            max_tokens=max_tokens,
            label=label,
        )

    @work(thread=True, exclusive=True, group="timelapse", exit_on_error=False)
    def _compute_frame(self, path: str, probes: tuple[str, ...], sentence: str) -> None:
        """Load the checkpoint with the playground's Predictor and read its frame, off the UI thread: the probes'
        guesses, the heads' types and every head's attention map of `sentence`."""
        try:
            from bert2.inference import Predictor
            from bert2.timelapse import DEFAULT_TEXTS, frame

            texts = [p for p in probes if "[MASK]" in p] or [DEFAULT_TEXTS[0]]
            predictor = Predictor.load(path)
            result = frame(predictor, [*texts, DEFAULT_TEXTS[1]], top_k=5)
            tokens, maps = predictor.attentions(sentence)  # (L, nh, T, T)
            result["attention"] = {"text": sentence, "tokens": tokens, "maps": maps.float().round(decimals=4).tolist()}
        except Exception as exc:  # a bad checkpoint must not leave the view stuck at "reading"
            result = {"error": f"could not read {path}: {exc}"}
        self.app.call_from_thread(self._frame_ready, path, sentence, result)

    def _frame_ready(self, path: str, sentence: str, result: dict[str, Any]) -> None:
        if len(self.frames) >= 64:  # a long job keeps saving checkpoints: forget the oldest frames read
            del self.frames[next(iter(self.frames))]
        self.frames[(path, sentence)] = result
        if self.selected is not None and self.selected.path == path:
            self._show_frame(self.selected)

    def action_next_head(self) -> None:
        """The next head of the attention map, layer by layer (the last head of the last layer wraps to L0 h0)."""
        if self.selected is None or not self.scrubbing:
            self.notify("press ← or → first: the time-lapse shows the attention map", severity="warning")
            return
        frame = self.frames.get((self.selected.path, self.sentence)) or {}
        maps = (frame.get("attention") or {}).get("maps")
        if not maps:
            return
        self.att_head += 1
        if self.att_head >= len(maps[self.att_layer]):
            self.att_head, self.att_layer = 0, (self.att_layer + 1) % len(maps)
        self._show_frame(self.selected)

    def action_export(self) -> None:
        """Write the time-lapse frame shown (loss curve with its step, probes, heads grid, attention map) as a
        standalone HTML page under paths.root/exports/."""
        from bert2.html_export import scrub_page

        info = self.selected
        frame = self.frames.get((info.path, self.sentence)) if info is not None and self.scrubbing else None
        if info is None or frame is None or frame.get("error"):
            self.notify("nothing to export yet: press ← or → and wait for the frame", severity="warning")
            return
        try:
            train, evals = history_series(read_state(Path(info.path)))
        except CheckpointError:
            train, evals = [], []
        text = scrub_page(frame, train, evals, f"time-lapse {self.lapse_position}", self.att_layer, self.att_head)
        save_page(self, self.bert2.config.paths.root, f"timelapse-step{info.step}", text)

    # ------------------------------------------------------------------------------------------- actions
    def _need(self) -> CheckpointInfo | None:
        if self.selected is None:
            self.notify("select a checkpoint first (arrows, then the key)", severity="warning")
        elif not self.selected.valid:
            self.notify(
                f"{Path(self.selected.path).name} is not a valid checkpoint: {self.selected.error}", severity="error"
            )
            return None
        return self.selected

    def action_refresh(self) -> None:
        self.reload()
        self.notify(f"{len(self.infos)} checkpoint(s)", title="Checkpoints")

    def action_use(self) -> None:
        info = self._need()
        if info is not None:
            self.post_message(UseInPlayground(info.path))

    def action_resume(self) -> None:
        info = self._need()
        if info is not None:
            self.post_message(ResumeFrom(info))

    def action_finetune(self) -> None:
        info = self._need()
        if info is None:
            return
        if info.kind != "pretrain":
            self.notify(
                "fine-tuning starts from a pretraining checkpoint; pick one under transformer/pretrain",
                severity="warning",
            )
            return
        self.post_message(FinetuneFrom(info.path))

    def action_distill(self) -> None:
        info = self._need()
        if info is None:
            return
        if info.task not in DISTILL_TEACHERS:
            self.notify(
                f"distillation learns from a pretraining or classify teacher; this is a {info.task} checkpoint",
                severity="warning",
            )
            return
        self.post_message(DistillFrom(info.path))

    def action_prune(self) -> None:
        info = self._need()
        if info is None:
            return
        if info.task not in PRUNE_TASKS:
            self.notify(f"pruning handles {', '.join(PRUNE_TASKS)} checkpoints, not {info.task}", severity="warning")
            return
        self.post_message(PruneFrom(info.path))

    def action_delete(self) -> None:
        info = self.selected
        if info is None:
            self.notify("select a checkpoint first", severity="warning")
            return
        if self.bert2.is_protected(info.path):
            self.notify(
                "the running job writes this checkpoint directory; stop the job first (2, x)",
                severity="error",
                title="Delete",
            )
            return

        def done(ok: bool | None) -> None:
            if not ok:
                return
            if self.bert2.is_protected(info.path):  # a job may have started while the dialog was open
                self.notify("a job started meanwhile and writes here; not deleted", severity="error")
                return
            try:
                shutil.rmtree(info.path)
            except OSError as exc:
                self.notify(f"could not delete {info.path}: {exc.strerror or exc}", severity="error")
                return
            self.notify(f"deleted {Path(info.path).parent.name}/{Path(info.path).name}", title="Checkpoints")
            self.selected = None
            self.reload()
            self.post_message(CheckpointDeleted(info.path))

        self.app.push_screen(
            ConfirmScreen(
                f"Delete {info.kind}/{info.stage}/{Path(info.path).name}?\n{info.path}\n\n"
                f"This removes the directory and cannot be undone.",
                yes="Delete",
                danger=True,
            ),
            done,
        )
