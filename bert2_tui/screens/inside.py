"""Inside: one real batch followed from text to loss (bert2/explain.py does the work, bert2/explain_view.py
draws it; the same as `bert2 explain`).

The batch comes from the configured corpus (or the text typed at the top), masked by the trainer's own collator
with a seed you can change; the forward pass runs through the chosen pretraining checkpoint — by default the
newest one, so during a training job it follows the job's latest checkpoint. Loading and the forward pass run
in a thread worker and come back as an InsideReady message.

Keys: ←/→ example, n new batch, m re-mask the same examples, ↑/↓ choose a masked token, Enter drill into it
(its predictions and where each head looks from it), l/h next layer/head of the head view, ctrl+e save the
example (tokens, predictions, head view, model view) as a standalone HTML page under paths.root/exports.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Input, Select, Static

from bert2.checkpoint import damaged_summary, list_checkpoints
from bert2.errors import Bert2Error
from bert2.explain_view import (
    alibi_text,
    counts_text,
    head_view,
    legend,
    loss_text,
    model_view,
    nsp_text,
    position_grid,
    predictions_table,
    shapes_table,
    token_line,
)

from ..jobs import import_heavy
from ..messages import CheckpointsChanged, InsideReady
from ..widgets.nav import KeysFooter, NavBar
from .exporting import save_page

if TYPE_CHECKING:
    from ..app import Bert2App

BATCH_SIZE = 4


class InsideScreen(Screen):
    """One batch: tokens, segments, padding, MLM selection and fates, labels, NSP, shapes, predictions, loss and
    attention."""

    TITLE = "Inside"
    AUTO_FOCUS = None  # the arrows and letters belong to the screen until an input is clicked
    BINDINGS = [
        Binding("left", "example(-1)", "Prev example", id="inside.prev", tooltip="Previous example of the batch"),
        Binding("right", "example(1)", "Next example", id="inside.next", tooltip="Next example of the batch"),
        Binding("n", "new_batch", "New batch", id="inside.new_batch", tooltip="Other examples (next seed)"),
        Binding("m", "remask", "Re-mask", id="inside.remask", tooltip="Mask the same examples again (new draws)"),
        Binding("up", "token(-1)", "Prev token", id="inside.token_prev", show=False, tooltip="Previous masked token"),
        Binding("down", "token(1)", "Next token", id="inside.token_next", show=False, tooltip="Next masked token"),
        Binding("enter", "drill", "Drill in", id="inside.drill", tooltip="Details of the chosen masked token"),
        Binding("l", "layer", "Layer", id="inside.layer", tooltip="Next layer of the head view"),
        Binding("h", "head", "Head", id="inside.head", tooltip="Next head of the head view"),
        Binding(
            "ctrl+e",
            "export",
            "Export",
            id="inside.export",
            show=False,  # the footer is full at 120 columns; ? and ctrl+p list it
            tooltip="Save this example's tokens, predictions, head view and model view as a standalone HTML page",
        ),
        Binding(
            "ctrl+l",
            "pick_checkpoint",
            "Checkpoint",
            id="inside.checkpoint",
            tooltip="Choose the pretraining checkpoint",
        ),
        Binding("pageup", "scroll(-1)", "Page up", id="inside.page_up", show=False, tooltip="Scroll up"),
        Binding("pagedown", "scroll(1)", "Page down", id="inside.page_down", show=False, tooltip="Scroll down"),
        Binding(
            "escape",
            "release",
            "Leave inputs",
            id="inside.release",
            show=False,
            tooltip="Leave the text inputs so the keys above work",
        ),
    ]

    def __init__(self) -> None:
        super().__init__(id="inside-screen")
        self.explainer: Any = None
        self.explainer_path = ""
        self.result: Any = None
        self.example = 0
        self.token = 0  # index into the current example's masked positions
        self.att_layer = 0
        self.att_head = 0
        self.example_seed = 0
        self.mask_seed = 0
        self.request = 0
        self._paths: list[str] = []

    @property
    def bert2(self) -> Bert2App:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield NavBar("inside")
        with Horizontal(id="inside-toolbar"):
            yield Select(
                [],
                prompt="choose a pretraining checkpoint (ctrl+l)",
                id="inside-checkpoint",
                compact=True,
                tooltip="The pretraining checkpoint whose forward pass is shown",
            )
            yield Input("", placeholder="your sentence A (empty: a batch from the corpus)", id="inside-text")
            yield Input("", placeholder="sentence B (optional)", id="inside-pair")
        yield Static("", id="inside-status")
        with VerticalScroll(id="inside-scroll", can_focus=False):
            yield Static("", id="inside-example")
            yield Static("", id="inside-grid")
            yield Static("", id="inside-predictions")
            yield Static("", id="inside-detail")
            yield Static("", id="inside-batch")
            yield Static("", id="inside-attention")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.set_focus(None)  # the arrows and letters are the screen's until an input is clicked
        self.query_one("#inside-example", Static).update(
            Text("Pick a pretraining checkpoint: its forward pass over one real batch appears here.", style="dim")
        )
        self.refresh_checkpoints()

    def on_screen_resume(self) -> None:
        self.refresh_checkpoints()
        self.call_after_refresh(self.set_focus, None)  # after Textual's own focus-on-show

    def on_checkpoints_changed(self, message: CheckpointsChanged) -> None:
        self.refresh_checkpoints()

    # -------------------------------------------------------------------------------------- checkpoints
    def refresh_checkpoints(self) -> None:
        """Pretraining checkpoints, newest first (a running job's latest leads); keep the chosen one."""
        try:
            listed = [i for i in list_checkpoints(self.bert2.config.paths.root) if i.kind == "pretrain"]
        except OSError:
            listed = []
        infos = [i for i in listed if i.valid]
        newest = {"checkpoint": 2, "final": 1, "best": 0}  # at the same step and second, the periodic one leads
        infos.sort(key=lambda i: (i.created, i.step, newest.get(i.stage, 0)), reverse=True)
        options = [(f"{i.stage}/{Path(i.path).name} ({i.task})", i.path) for i in infos]
        paths = [p for _, p in options]
        select = self.query_one("#inside-checkpoint", Select)
        if paths != self._paths:
            self._paths = paths
            with select.prevent(Select.Changed):
                select.set_options(options)
        if not paths:
            damaged = damaged_summary(listed)
            if damaged:
                self._status(Text(f"✗ {damaged}; screen 3 lists them", style="red"))
            else:
                self._status(Text("no pretraining checkpoint yet — train one on screen 2 (s)", style="yellow"))
            return
        current = select.value if select.value is not Select.NULL else None
        target = current if current in paths else paths[0]
        if select.value != target:
            with select.prevent(Select.Changed):
                select.value = target
        if target != self.explainer_path:
            self.run_explain(target)

    @on(Select.Changed, "#inside-checkpoint")
    def _checkpoint_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is not Select.NULL:
            self.run_explain(str(event.value))

    def action_scroll(self, direction: int) -> None:
        scroll = self.query_one("#inside-scroll", VerticalScroll)
        (scroll.scroll_page_down if direction > 0 else scroll.scroll_page_up)()

    def action_release(self) -> None:
        self.set_focus(None)

    def action_pick_checkpoint(self) -> None:
        self.query_one("#inside-checkpoint", Select).focus()

    # ---------------------------------------------------------------------------------------------- work
    @on(Input.Submitted)
    def _text_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.set_focus(None)  # back to the screen's keys
        self.run_explain()

    def run_explain(self, path: str | None = None) -> None:
        path = path or self.explainer_path or (self._paths[0] if self._paths else "")
        if not path:
            return
        self.request += 1
        text = self.query_one("#inside-text", Input).value
        pair = self.query_one("#inside-pair", Input).value
        self._status(Text(f"running the batch through {Path(path).parent.name}/{Path(path).name}…", style="yellow"))
        self._explain_worker(self.request, path, text, pair, self.example_seed, self.mask_seed)

    @work(thread=True, exclusive=True, group="inside", exit_on_error=False)
    def _explain_worker(self, request: int, path: str, text: str, pair: str, example_seed: int, mask_seed: int) -> None:
        try:
            import_heavy()
            from bert2.explain import Explainer  # torch: only when the screen runs a batch

            explainer = (
                self.explainer
                if self.explainer_path == path and self.explainer is not None
                else Explainer(self.bert2.config, path)
            )
            if text.strip():
                examples, source = explainer.text_examples(text, pair if pair.strip() else None)
            else:
                examples, source = explainer.corpus_examples(BATCH_SIZE, example_seed)
            result = explainer.explain(examples, mask_seed, source)
            self.post_message(InsideReady(request, path, explainer, result))
        except Bert2Error as exc:
            self.post_message(InsideReady(request, path, error=str(exc)))
        except Exception as exc:  # never crash the app: show what went wrong
            self.post_message(InsideReady(request, path, error=f"{type(exc).__name__}: {exc}"))

    def on_inside_ready(self, message: InsideReady) -> None:
        if message.request != self.request:
            return  # a newer request is on its way
        if message.error:
            self._status(Text(f"✗ {message.error}", style="bold red"))
            return
        self.explainer, self.explainer_path, self.result = message.explainer, message.path, message.result
        self.example = min(self.example, len(self.result.examples) - 1)
        self.token = 0
        self._status(
            Text.assemble(
                ("● ", "green"),
                (f"{Path(message.path).parent.name}/{Path(message.path).name}", "bold"),
                (f"  examples: {self.result.source}, seed {self.example_seed}; masks: seed {self.mask_seed}", "dim"),
            )
        )
        self.query_one("#inside-status", Static).tooltip = f"{message.path}\nexamples: {self.result.source}"
        self.show()

    # ---------------------------------------------------------------------------------------------- view
    def _status(self, text: Text) -> None:
        self.query_one("#inside-status", Static).update(text)

    @property
    def row(self) -> dict[str, Any]:
        return self.result.examples[self.example]

    def show(self) -> None:
        r = self.result
        row = self.row
        where = f" (corpus example {row['corpus_index']})" if "corpus_index" in row else ""
        header = Text.assemble(
            (f"example {self.example + 1} of {len(r.examples)}{where}", "bold"),
            "   ",
            legend(),
            "\n\n",
            token_line(row),
            "\n\n",
            nsp_text(row),
        )
        self.query_one("#inside-example", Static).update(header)
        width = max(60, (self.size.width or 120) - 4)
        self.query_one("#inside-grid", Static).update(position_grid(row, width))
        preds = row["predictions"]
        self.token = min(self.token, max(0, len(preds) - 1))
        self.query_one("#inside-predictions", Static).update(
            predictions_table(row, self.token) if preds else Text("no masked token in this example", style="dim")
        )
        self.query_one("#inside-detail", Static).update(self._detail())
        self.query_one("#inside-batch", Static).update(
            Group(
                counts_text(r.counts), shapes_table(r.shapes), loss_text(r.loss, len(r.examples)), alibi_text(r.alibi)
            )
        )
        self.query_one("#inside-attention", Static).update(self._attention())

    def _detail(self) -> Text:
        preds = self.row["predictions"]
        if not preds:
            return Text("")
        p = preds[self.token]
        out = Text.assemble(
            ("chosen token ", "dim"),
            (f"position {p['position']}", "bold"),
            f": the model saw {p['input']!r} ({p['fate']}), the label is {p['label']!r}; "
            f"p(label) = {p['label_probability']:.3f}, so its loss is -ln p = {p['loss']:.3f}\n",
        )
        if self.result.attention is not None:
            maps = self.result.attention[self.att_layer, self.example, self.att_head]  # (T, T)
            real = sum(self.row["attention_mask"])
            out.append_text(
                head_view(
                    self.row["tokens"][:real],
                    maps[p["position"], :real].tolist(),
                    p["position"],
                    self.att_layer,
                    self.att_head,
                )
            )
        return out

    def _attention(self) -> Text:
        if self.result.attention is None:
            return Text("")
        real = sum(self.row["attention_mask"])
        maps = self.result.attention[:, self.example].tolist()  # (L, nh, T, T)
        out = Text(
            "model view: every layer x head, the real tokens' attention pooled to a small map (rows attend "
            "to columns; darker = more)\n",
            style="bold",
        )
        out.append_text(model_view(maps, real))
        return out

    # ------------------------------------------------------------------------------------------- actions
    def action_example(self, delta: int) -> None:
        if self.result is not None:
            self.example = (self.example + delta) % len(self.result.examples)
            self.token = 0
            self.show()

    def action_new_batch(self) -> None:
        self.example_seed += 1
        self.example = 0
        self.run_explain()

    def action_remask(self) -> None:
        self.mask_seed += 1
        self.run_explain()

    def action_token(self, delta: int) -> None:
        if self.result is not None and self.row["predictions"]:
            self.token = (self.token + delta) % len(self.row["predictions"])
            self.show()

    def action_drill(self) -> None:
        if self.result is not None:
            self.query_one("#inside-detail", Static).scroll_visible()
            self.show()

    def action_layer(self) -> None:
        if self.result is not None and self.result.attention is not None:
            self.att_layer = (self.att_layer + 1) % self.result.attention.shape[0]
            self.show()

    def action_export(self) -> None:
        """Write the example shown as the page `bert2 explain --html` makes, under paths.root/exports/."""
        from bert2.html_export import inside_page

        if self.result is None:
            self.notify("nothing to export yet: pick a checkpoint and wait for its batch", severity="warning")
            return
        r = self.result
        maps = r.attention[:, self.example].tolist() if r.attention is not None else None  # (L, nh, T, T)
        text = inside_page(r.checkpoint, r.source, self.row, maps, self.att_layer, self.att_head, self.token, r.loss)
        save_page(self, self.bert2.config.paths.root, "inside", text)

    def action_head(self) -> None:
        if self.result is not None and self.result.attention is not None:
            self.att_head = (self.att_head + 1) % self.result.attention.shape[2]
            self.show()
