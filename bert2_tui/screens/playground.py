"""Playground: ask a checkpoint things as you type (debounced) — fill-mask, QA, classification, named entities,
similarity, attention maps.

The predictor loads in a thread worker (the first load imports torch) and predictions run in a thread worker too;
results come back as messages tagged with a request number, so a slow answer to an old input never overwrites a
newer one. Every error a user can cause (no [MASK], empty text, wrong task) is a Bert2Error shown in place.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Input, Label, Select, Static, TabbedContent, TabPane

from bert2.checkpoint import damaged_summary, list_checkpoints
from bert2.errors import Bert2Error, InputError

from ..jobs import DEFAULT_PROBE, import_heavy
from ..messages import CheckpointsChanged, PlaygroundCheckpointChanged, PredictionDone, PredictorLoaded
from ..widgets.bars import bar, fill_mask_text, filled_sentence, heatmap_text, prob_rows
from ..widgets.nav import KeysFooter, NavBar

if TYPE_CHECKING:
    from ..app import Bert2App

TOOLS = ("mask", "qa", "classify", "ner", "similarity", "attention")
TOOL_TITLES = {
    "mask": "Fill mask",
    "qa": "Question answering",
    "classify": "Classify",
    "ner": "Entities",
    "similarity": "Similarity",
    "attention": "Attention",
}
# One colour per entity type, in the order a type is first met in the checkpoint's labels (cycled).
ENTITY_STYLES = (
    "bold black on cyan",
    "bold black on yellow",
    "bold black on green",
    "bold white on magenta",
    "bold white on blue",
    "bold black on bright_red",
    "bold black on bright_cyan",
    "bold black on bright_yellow",
    "bold black on bright_green",
    "bold white on dark_orange",
)
DEBOUNCE_S = 0.3


# ----------------------------------------------------------------------------------------- result shapes
def normalize_classes(result: dict[str, Any]) -> list[tuple[str, float]]:
    """(label, probability) pairs, most probable first, from `Predictor.classify`'s {"label", "score", "scores"}."""
    return sorted(result["scores"].items(), key=lambda x: -x[1])


def normalize_answer(result: dict[str, Any], context: str) -> tuple[str, float, tuple[int, int] | None]:
    """(answer, score, character span in `context` or None) from `Predictor.answer`'s {"answer", "score"}, plus
    "start" and "end" for span QA (-1 when there is no answer). A generative answer has no offsets: it is
    highlighted where it occurs in the context, if it does."""
    answer = result["answer"]
    if "start" in result:
        span = (result["start"], result["end"]) if 0 <= result["start"] < result["end"] else None
    else:
        at = context.lower().find(answer.lower().strip()) if answer.strip() else -1
        span = (at, at + len(answer.strip())) if at >= 0 else None
    return answer, result["score"], span


def entity_text(text: str, entities: list[dict[str, Any]], labels: list[str]) -> Text:
    """The sentence with each entity on its type's colour (character offsets from `Predictor.entities`), then
    one line per entity with its score, and a legend of the types the checkpoint knows."""
    types = list(dict.fromkeys(label[2:] for label in labels if label != "O"))
    for e in entities:  # a type missing from the labels (cannot happen with a consistent checkpoint) still shows
        if e["label"] not in types:
            types.append(e["label"])
    style = {t: ENTITY_STYLES[i % len(ENTITY_STYLES)] for i, t in enumerate(types)}
    out = Text()
    at = 0
    for e in sorted(entities, key=lambda e: e["start"]):
        out.append(text[at : e["start"]])
        out.append(text[e["start"] : e["end"]], style=style[e["label"]])
        out.append(f" {e['label']}", style="dim")
        at = e["end"]
    out.append(text[at:])
    out.append("\n\n")
    if not entities:
        out.append("no entities found\n", style="dim")
    for e in entities:
        out.append(f"{e['text'][:30]:<30} ", style=style[e["label"]])
        out.append(f" {e['label']:<14} {e['score']:.3f} {bar(e['score'], 20)}\n")
    if types:
        out.append("\ntypes: ", style="dim")
        for t in types:
            out.append(f" {t} ", style=style[t])
            out.append(" ")
    return out


class AttentionMap(Static, can_focus=True):
    """Heat map of one layer/head; arrows change head (left/right) and layer (up/down) when focused."""

    BINDINGS = [
        Binding("left", "head(-1)", "Head -", id="attention.head_prev", tooltip="Previous attention head"),
        Binding("right", "head(1)", "Head +", id="attention.head_next", tooltip="Next attention head"),
        Binding("up", "layer(-1)", "Layer -", id="attention.layer_prev", tooltip="Previous layer"),
        Binding("down", "layer(1)", "Layer +", id="attention.layer_next", tooltip="Next layer"),
    ]

    def action_head(self, delta: int) -> None:
        self.screen.step_attention(head=delta)  # type: ignore[attr-defined]

    def action_layer(self, delta: int) -> None:
        self.screen.step_attention(layer=delta)  # type: ignore[attr-defined]


class PlaygroundScreen(Screen):
    """Pick a checkpoint; type and watch predictions update."""

    TITLE = "Playground"
    WIDGET_BINDINGS = {"Attention map (playground, focused)": AttentionMap.BINDINGS}
    """Keys of the focusable widgets inside the screen, for the help screen."""
    BINDINGS = [
        Binding(
            "ctrl+l",
            "pick_checkpoint",
            "Checkpoint",
            id="playground.checkpoint",
            tooltip="Choose the checkpoint to query",
        ),
        Binding(
            "ctrl+t",
            "next_tool",
            "Next tool",
            id="playground.next_tool",
            tooltip="Fill mask → QA → classify → entities → similarity → attention",
        ),
        Binding("ctrl+n", "top_k", "Top-k", id="playground.top_k", tooltip="Show 5 or 10 predictions per [MASK]"),
        Binding(
            "ctrl+r",
            "reload",
            "Reload",
            id="playground.reload",
            show=False,
            tooltip="Reload the checkpoint list and the selected checkpoint",
        ),
    ]

    def __init__(self) -> None:
        super().__init__(id="playground-screen")
        self.predictor: Any = None
        self.predictor_path = ""
        self.loading_path = ""
        self.request = 0
        self.top_k = 5
        self._debounce: Timer | None = None
        self._attention: tuple[list[str], list] | None = None  # tokens, (L, H, T, T) nested lists
        self._layer = 0
        self._head = 0
        self._paths: list[str] = []

    @property
    def bert2(self) -> Bert2App:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield NavBar("playground")
        with Horizontal(id="pg-toolbar"):
            yield Select(
                [],
                prompt="choose a checkpoint (ctrl+l)",
                id="pg-checkpoint",
                compact=True,
                tooltip="The checkpoint the playground queries",
            )
            yield Static("", id="pg-status")
        with TabbedContent(id="pg-tabs", initial="tab-mask"):
            with TabPane(TOOL_TITLES["mask"], id="tab-mask"):
                yield Input(
                    DEFAULT_PROBE, placeholder="a sentence with one or more [MASK]", id="mask-input", classes="pg-input"
                )
                with VerticalScroll(classes="pg-output-scroll"):
                    yield Static("", id="mask-output", classes="pg-output")
            with TabPane(TOOL_TITLES["qa"], id="tab-qa"):
                yield Input("", placeholder="question", id="qa-question", classes="pg-input")
                yield Input(
                    "", placeholder="context (the text that holds the answer)", id="qa-context", classes="pg-input"
                )
                with VerticalScroll(classes="pg-output-scroll"):
                    yield Static("", id="qa-output", classes="pg-output")
            with TabPane(TOOL_TITLES["classify"], id="tab-classify"):
                yield Input("", placeholder="text to classify", id="classify-input", classes="pg-input")
                with VerticalScroll(classes="pg-output-scroll"):
                    yield Static("", id="classify-output", classes="pg-output")
            with TabPane(TOOL_TITLES["ner"], id="tab-ner"):
                yield Input(
                    "", placeholder="a sentence with names, places, companies…", id="ner-input", classes="pg-input"
                )
                with VerticalScroll(classes="pg-output-scroll"):
                    yield Static("", id="ner-output", classes="pg-output")
            with TabPane(TOOL_TITLES["similarity"], id="tab-similarity"):
                yield Input("", placeholder="first sentence", id="sim-a", classes="pg-input")
                yield Input("", placeholder="second sentence", id="sim-b", classes="pg-input")
                with VerticalScroll(classes="pg-output-scroll"):
                    yield Static("", id="similarity-output", classes="pg-output")
            with TabPane(TOOL_TITLES["attention"], id="tab-attention"):
                yield Input(
                    "The capital of France is Paris.",
                    placeholder="a sentence",
                    id="attention-input",
                    classes="pg-input",
                )
                with Horizontal(id="att-pickers"):
                    yield Label("layer", classes="picker-label")
                    yield Select(
                        [], allow_blank=True, prompt="–", id="att-layer", tooltip="Encoder layer", compact=True
                    )
                    yield Label("head", classes="picker-label")
                    yield Select(
                        [], allow_blank=True, prompt="–", id="att-head", tooltip="Attention head", compact=True
                    )
                    yield Static("focus the map: ←/→ head, ↑/↓ layer", classes="hint")
                with VerticalScroll(classes="pg-output-scroll"):
                    yield AttentionMap("", id="attention-output", classes="pg-output")
        yield KeysFooter()

    def on_resize(self) -> None:
        # Below 110 columns the checkpoint picker narrows so that the status beside it keeps its text.
        self.set_class(self.size.width < 110, "narrow")

    def on_mount(self) -> None:
        self.refresh_checkpoints()
        self.query_one("#mask-input", Input).focus()
        for tool in TOOLS:
            self._output(tool).update(Text(self._idle_hint(tool), style="dim"))

    def on_screen_resume(self) -> None:
        self.refresh_checkpoints()

    def on_checkpoints_changed(self, message: CheckpointsChanged) -> None:
        self.refresh_checkpoints()

    # -------------------------------------------------------------------------------------- checkpoints
    def refresh_checkpoints(self) -> None:
        """Fill the picker with valid checkpoints (best first); keep or pick the requested one."""
        root = self.bert2.config.paths.root
        try:
            listed = list_checkpoints(root)
        except OSError:
            listed = []
        infos = [i for i in listed if i.valid]
        order = {"best": 0, "final": 1, "checkpoint": 2}
        infos.sort(key=lambda i: (i.kind != "pretrain", order.get(i.stage, 3), -i.step))
        options = []
        for i in infos:
            label = f"{i.kind}/{i.stage}/{Path(i.path).name}"
            if i.task:
                label += f" ({i.task})"
            options.append((label, i.path))
        paths = [p for _, p in options]
        select = self.query_one("#pg-checkpoint", Select)
        wanted = self.bert2.playground_path or (select.value if select.value is not Select.NULL else None)
        if paths != self._paths:
            self._paths = paths
            with select.prevent(Select.Changed):
                select.set_options(options)
        if not paths:
            self.predictor = None
            self.predictor_path = ""
            damaged = damaged_summary(listed)
            if damaged:
                self._status(Text(f"✗ {damaged}; screen 3 lists them", style="red"))
            else:
                self._status(
                    Text("no checkpoint yet — train one on screen 2 (s), or load one on screen 3", style="yellow")
                )
            return
        target = wanted if wanted in paths else paths[0]
        if select.value != target:
            select.value = target  # -> Select.Changed -> load
        elif target != self.predictor_path and target != self.loading_path:
            self.load_checkpoint(target)

    @on(Select.Changed, "#pg-checkpoint")
    def _checkpoint_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is not Select.NULL:
            self.post_message(PlaygroundCheckpointChanged(str(event.value)))
            self.load_checkpoint(str(event.value))

    def load_checkpoint(self, path: str) -> None:
        if (path == self.predictor_path and self.predictor is not None) or path == self.loading_path:
            return
        self.loading_path = path
        self._status(Text(f"loading {self._short(path)}…", style="yellow"))
        self._load_worker(path)

    @work(thread=True, exclusive=True, group="pg-load", exit_on_error=False)
    def _load_worker(self, path: str) -> None:
        try:
            import_heavy()
            from bert2.inference import Predictor  # torch: only when a checkpoint is loaded

            predictor = Predictor.load(path)
            self.post_message(PredictorLoaded(path, predictor))
        except Bert2Error as exc:
            self.post_message(PredictorLoaded(path, error=str(exc)))
        except Exception as exc:  # never crash the app on a bad checkpoint
            self.post_message(PredictorLoaded(path, error=f"{type(exc).__name__}: {exc}"))

    def on_predictor_loaded(self, message: PredictorLoaded) -> None:
        if message.path != self.loading_path:
            return  # an older load finished after a newer request
        self.loading_path = ""
        if message.error:
            self.predictor, self.predictor_path = None, ""
            self._status(Text(f"✗ {message.error}", style="bold red"))
            return
        self.predictor, self.predictor_path = message.predictor, message.path
        self._attention = None
        self._status(
            Text.assemble(
                ("● ", "green"), (self._short(message.path), "bold"), (f"  task {self.predictor.task}", "dim")
            )
        )
        self.run_tool(self.current_tool())

    def _status(self, text: Text) -> None:
        self.query_one("#pg-status", Static).update(text)

    @staticmethod
    def _short(path: str) -> str:
        p = Path(path)
        return f"{p.parent.name}/{p.name}"

    # -------------------------------------------------------------------------------------------- tools
    def current_tool(self) -> str:
        active = self.query_one("#pg-tabs", TabbedContent).active or "tab-mask"
        return active.removeprefix("tab-")

    def _output(self, tool: str) -> Static:
        return self.query_one(f"#{tool}-output", Static)

    @staticmethod
    def _idle_hint(tool: str) -> str:
        return {
            "mask": "Type a sentence with [MASK]; predictions appear as you type.",
            "qa": "Type a question and a context; the answer appears as you type.",
            "classify": "Type a text; class probabilities appear as you type (needs a classify checkpoint).",
            "ner": "Type a sentence; its named entities are coloured as you type (needs a ner checkpoint).",
            "similarity": "Type two sentences; their similarity appears as you type.",
            "attention": "Type a sentence; pick a layer and head to see who attends to whom.",
        }[tool]

    @on(TabbedContent.TabActivated, "#pg-tabs")
    def _tab_changed(self, event: TabbedContent.TabActivated) -> None:
        tool = self.current_tool()
        focused = self.focused
        pane = self.query_one(f"#tab-{tool}", TabPane)
        # Focus left behind in a hidden pane follows to the new one; on the tab bar it stays (arrow keys browse).
        if isinstance(focused, Input) and focused not in pane.query(Input):
            self.query_one(f"#tab-{tool} .pg-input", Input).focus()
        self.run_tool(tool)

    @on(Input.Changed, ".pg-input")
    def _input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if self._debounce is not None:
            self._debounce.stop()
        tool = self.current_tool()
        self._debounce = self.set_timer(DEBOUNCE_S, lambda: self.run_tool(tool))

    @on(Input.Submitted, ".pg-input")
    def _input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if self._debounce is not None:
            self._debounce.stop()
        self.run_tool(self.current_tool())

    def _value(self, wid: str) -> str:
        return self.query_one(f"#{wid}", Input).value

    def run_tool(self, tool: str) -> None:
        """Start a prediction for `tool` with the current inputs (after the debounce)."""
        out = self._output(tool)
        if self.predictor is None:
            if self.loading_path:
                out.update(Text("loading the checkpoint…", style="yellow"))
            elif not self._paths:
                out.update(
                    Text("No checkpoint to ask yet. Train one (screen 2, s) or pick one (ctrl+l).", style="yellow")
                )
            else:
                out.update(Text("Choose a checkpoint (ctrl+l).", style="yellow"))
            return
        if tool == "mask":
            args: tuple = (self._value("mask-input"), self.top_k)
        elif tool == "qa":
            args = (self._value("qa-question"), self._value("qa-context"))
        elif tool == "classify":
            args = (self._value("classify-input"),)
        elif tool == "ner":
            args = (self._value("ner-input"),)
        elif tool == "similarity":
            args = (self._value("sim-a"), self._value("sim-b"))
        else:
            args = (self._value("attention-input"),)
        self.request += 1
        self._predict_worker(self.request, tool, args, self.predictor)

    @work(thread=True, exclusive=True, group="pg-predict", exit_on_error=False)
    def _predict_worker(self, request: int, tool: str, args: tuple, predictor: Any) -> None:
        try:
            result = run_prediction(predictor, tool, args)
            self.post_message(PredictionDone(request, tool, result))
        except Bert2Error as exc:
            self.post_message(PredictionDone(request, tool, error=str(exc)))
        except Exception as exc:  # an unexpected failure is shown, never raised into the app
            self.post_message(PredictionDone(request, tool, error=f"{type(exc).__name__}: {exc}", hint=False))

    def on_prediction_done(self, message: PredictionDone) -> None:
        if message.request != self.request:
            return  # superseded by newer input
        out = self._output(message.tool)
        if message.error:
            style = "yellow" if message.hint else "bold red"
            out.update(Text(("hint: " if message.hint else "error: ") + message.error, style=style))
            return
        out.update(render_result(message.tool, message.result, self))

    # ---------------------------------------------------------------------------------------- attention
    def set_attention(self, tokens: list[str], maps: list) -> Text:
        self._attention = (tokens, maps)
        layers, heads = len(maps), len(maps[0]) if maps else 0
        self._layer = min(self._layer, max(layers - 1, 0))
        self._head = min(self._head, max(heads - 1, 0))
        layer_sel = self.query_one("#att-layer", Select)
        head_sel = self.query_one("#att-head", Select)
        with layer_sel.prevent(Select.Changed), head_sel.prevent(Select.Changed):
            layer_sel.set_options([(str(i), i) for i in range(layers)])
            head_sel.set_options([(str(i), i) for i in range(heads)])
            layer_sel.value = self._layer
            head_sel.value = self._head
        return self.attention_text()

    def attention_text(self) -> Text:
        if not self._attention:
            return Text("")
        tokens, maps = self._attention
        title = Text(f"layer {self._layer} · head {self._head}   rows attend to columns\n", style="bold")
        title.append_text(heatmap_text(tokens, maps[self._layer][self._head]))
        return title

    def step_attention(self, layer: int = 0, head: int = 0) -> None:
        if not self._attention:
            return
        maps = self._attention[1]
        self._layer = (self._layer + layer) % len(maps)
        self._head = (self._head + head) % len(maps[0])
        self.set_attention(*self._attention)
        self._output("attention").update(self.attention_text())

    @on(Select.Changed, "#att-layer, #att-head")
    def _att_pick(self, event: Select.Changed) -> None:
        event.stop()
        if event.value is Select.NULL or not self._attention:
            return
        if event.select.id == "att-layer":
            self._layer = int(event.value)  # type: ignore[arg-type]
        else:
            self._head = int(event.value)  # type: ignore[arg-type]
        self._output("attention").update(self.attention_text())

    # ------------------------------------------------------------------------------------------ actions
    def action_pick_checkpoint(self) -> None:
        select = self.query_one("#pg-checkpoint", Select)
        select.focus()
        select.expanded = True

    def action_next_tool(self) -> None:
        i = TOOLS.index(self.current_tool())
        self.show_tool(TOOLS[(i + 1) % len(TOOLS)])

    def action_show_tool(self, tool: str) -> None:
        self.show_tool(tool)

    def show_tool(self, tool: str) -> None:
        """Activate `tool`'s tab and put the cursor in its first field (focus first, so the two agree)."""
        self.query_one(f"#tab-{tool} .pg-input", Input).focus()
        self.query_one("#pg-tabs", TabbedContent).active = f"tab-{tool}"

    def action_top_k(self) -> None:
        self.top_k = 10 if self.top_k == 5 else 5
        self.notify(f"top-{self.top_k} per [MASK]", title="Playground")
        self.run_tool("mask")

    def action_reload(self) -> None:
        self.predictor, self.predictor_path = None, ""
        self._paths = []
        self.refresh_checkpoints()


def run_prediction(predictor: Any, tool: str, args: tuple) -> Any:
    """Call the predictor for `tool` (in a worker thread); input with nothing to ask about is an InputError hint."""
    if tool == "mask":
        text, top_k = args
        if not text.strip():
            raise InputError("the input is empty; type a sentence with [MASK] where the model should guess")
        return predictor.fill_mask(text, top_k=top_k)
    if tool == "attention":
        (text,) = args
        if not text.strip():
            raise InputError("the input is empty; type a sentence to see its attention")
        tokens, maps = predictor.attentions(text)
        return tokens, maps.tolist()
    if tool == "qa":
        question, context = args
        if not question.strip() or not context.strip():
            raise InputError("type both a question and a context")
        return predictor.answer(question, context)
    if tool == "classify":
        (text,) = args
        if not text.strip():
            raise InputError("the text is empty; type something to classify")
        return predictor.classify(text)
    if tool == "ner":
        (text,) = args
        if not text.strip():
            raise InputError("the text is empty; type a sentence with names in it")
        return predictor.entities(text)
    if tool == "similarity":
        a, b = args
        if not a.strip() or not b.strip():
            raise InputError("type two sentences to compare")
        return predictor.similarity(a, b)
    raise InputError(f"unknown tool {tool}")


def render_result(tool: str, result: Any, screen: PlaygroundScreen) -> Text:
    if tool == "mask":  # Predictor.fill_mask: per [MASK], the top-k [{"token", "score"}]
        text = filled_sentence(screen._value("mask-input"), result)
        text.append("\n\n")
        text.append_text(fill_mask_text(result, width=30, label_width=18))
        return text
    if tool == "attention":
        tokens, maps = result
        return screen.set_attention(tokens, maps)
    if tool == "classify":
        return prob_rows(normalize_classes(result), width=30, label_width=18)
    if tool == "ner":
        labels = list((screen.predictor.meta.get("labels") or []) if screen.predictor is not None else [])
        return entity_text(screen._value("ner-input"), result["entities"], labels)
    if tool == "similarity":  # Predictor.similarity: a float in [-1, 1]
        text = Text(f"cosine similarity {result:+.3f}", style="bold")
        text.append("   (mean-pooled encodings; -1 opposite, 0 unrelated, +1 same direction)\n\n", style="dim")
        text.append("-1 ", style="dim")
        text.append(bar((result + 1) / 2, 50), style="bold cyan")
        text.append(" +1", style="dim")
        return text
    if tool == "qa":
        context = screen._value("qa-context")
        answer, score, span = normalize_answer(result, context)
        text = Text("answer: ", style="bold")
        text.append(answer or "(no answer)", style="bold green")
        text.append(f"   score {score:.3f}", style="dim")
        text.append("\n\n")
        if span is not None:
            text.append(context[: span[0]])
            text.append(context[span[0] : span[1]], style="bold black on yellow")
            text.append(context[span[1] :])
        else:
            text.append(context, style="dim")
        return text
    raise ValueError(f"unknown tool {tool}")
