"""Train screen: start / stop / resume a job from the keyboard; live charts, eval table, probes and event log.

The screen never receives trainer events directly: the app folds every batch into its `RunState` and bumps a
version counter; a 0.25 s timer here redraws only when that counter moved (dirty flag) and only while the screen
is shown, so a fast trainer cannot make the UI redraw more than ~4 times a second.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Label, ProgressBar, RichLog, Select, Static, TextArea

from bert2.registry import FINETUNE_TASKS

from ..jobs import RunState, iter_metric_names
from ..messages import JobChoiceChanged, JobShown, ProbesChanged, ReloadHistory, RunsListed, StartJob, StopJob
from ..widgets.bars import fill_mask_text
from ..widgets.nav import KeysFooter, NavBar
from .dialogs import ChoiceScreen
from .exporting import save_page

if TYPE_CHECKING:
    from ..app import Bert2App
    from ..history import HistoryRun, Overlay

JOB_CHOICES = (
    [("Pretrain (MLM+NSP)", "pretrain")]
    + [(f"Fine-tune: {t}", t) for t in FINETUNE_TASKS]
    + [("Distill a student", "distill"), ("Prune 25% of heads", "prune")]
)
"""Distill learns from distill.teacher (Checkpoints screen: t picks one); prune takes pretrain best/final (k there
prunes the selected checkpoint)."""
SHORT_METRIC = {
    "mlm_accuracy": "mlm acc",
    "nsp_accuracy": "nsp acc",
    "perplexity": "ppl",
    "accuracy": "acc",
    "f1_macro": "f1 macro",
    "f1_weighted": "f1 w",
    "exact_match": "EM",
    "mlm_loss": "mlm loss",
    "nsp_loss": "nsp loss",
}
LEVEL_STYLE = {"info": "", "warning": "yellow", "error": "bold red", "success": "green"}


def fmt_duration(seconds: float) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def fmt_metric(name: str, value: float) -> str:
    if "accuracy" in name or name in ("f1", "exact_match"):
        return f"{value:.3f}"
    if name == "perplexity":
        return f"{value:.4g}" if value < 1e5 else f"{value:.1e}"
    return f"{value:.3f}"


def probe_text(st: RunState) -> Text:
    """Probe results of the last evaluation: fill-mask top-5 (pretraining) or sample predictions (fine-tuning)."""
    out = Text()
    if not st.probes:
        what = "sample predictions" if st.kind == "finetune" else "the top-5 predictions for each probe"
        out.append(f"At every evaluation, {what} appear here.", style="dim")
        return out
    out.append(f"at step {st.probe_step}\n", style="dim")
    for probe in st.probes:
        text = str(probe.get("text", ""))
        out.append((text if len(text) <= 90 else text[:89] + "…") + "\n", style="bold")
        if probe.get("error"):
            out.append(f"  {probe['error']}\n", style="yellow")
        elif "predictions" in probe:
            out.append_text(fill_mask_text(probe.get("predictions") or [], width=12, label_width=12))
        elif "label" in probe:  # classification sample
            ok = probe.get("gold") is None or probe.get("gold") == probe.get("label")
            out.append(f"  → {probe['label']}", style="green" if ok else "red")
            if isinstance(probe.get("score"), (int, float)):
                out.append(f" {probe['score'] * 100:.0f}%", style="dim")
            if probe.get("gold") is not None:
                out.append(f"  (gold {probe['gold']})", style="dim")
            out.append("\n")
        elif "answer" in probe:  # QA sample
            out.append(f"  → {probe['answer'] or '(empty)'}\n", style="cyan")
            if probe.get("reference"):
                out.append(f"    reference: {probe['reference']}\n", style="dim")
    return out


def baseline_lines(st: RunState) -> tuple[dict[str, float], dict[str, float], dict[str, float], dict[str, float]]:
    """The loss baselines as chart lines, and where the evaluations crossed them (bert2.microscope):
    (loss chart references, parts chart references, loss chart marks, parts chart marks).

    The loss chart shows mlm + nsp, so its line is the sum of both baselines; the parts chart has one per part
    ("mlm", "nsp" series against the "mlm_loss", "nsp_loss" baselines)."""
    from bert2.microscope import crossings

    lines = st.baselines
    if not lines:
        return {}, {}, {}, {}
    total = {"loss": sum(lines.values())} if set(lines) == {"mlm_loss", "nsp_loss"} or len(lines) == 1 else {}
    crossed = crossings([(step, m) for step, m, _ in st.evals], {**lines, **total})
    short = {"mlm_loss": "mlm", "nsp_loss": "nsp"}
    loss_refs = {f"freq-only {v:.2f}": v for v in total.values()}
    part_refs = {f"{short.get(k, k)} base {v:.2f}": v for k, v in lines.items()}
    loss_marks = {f"below @{crossed['loss']}": float(crossed["loss"])} if "loss" in crossed else {}
    part_marks = {f"{short.get(k, k)} below @{crossed[k]}": float(crossed[k]) for k in lines if k in crossed}
    return loss_refs, part_refs, loss_marks, part_marks


class AfterFirstFrame(Horizontal):
    """A row whose children are built one refresh after the first frame instead of before it.

    Why: the Train screen is what `bert2-tui` opens on, and every widget mounted before the first frame adds to
    the time until anything shows (styles applied node by node, plotext imported). The row's space is reserved
    by the stylesheet, so the layout does not jump; its content appears one refresh (~0.1 s) later, and the
    screen redraws from the run state once it is there.
    """

    built = False

    def build(self) -> list:
        raise NotImplementedError

    def on_mount(self) -> None:
        self.call_after_refresh(self._build)

    async def _build(self) -> None:
        await self.mount_all(self.build())
        self.built = True
        self.on_built()
        screen = self.screen
        if isinstance(screen, TrainScreen):
            screen.tick(True)

    def on_built(self) -> None:
        pass


class ChartsRow(AfterFirstFrame):
    """Loss, loss parts and learning rate (plotext builds its documentation tables at import: ~50 ms)."""

    def build(self) -> list:
        from ..widgets.charts import SeriesChart  # plotext (~50 ms): after the first frame

        return [
            SeriesChart("loss", id="chart-loss"),
            SeriesChart("loss parts", id="chart-parts"),
            SeriesChart("learning rate", smooth=False, id="chart-lr"),
        ]


class BottomRow(AfterFirstFrame):
    """Evaluation table, probe editor and results, event log: the row with the most widgets (~70 ms of styling)."""

    def build(self) -> list:
        probes = self.app.probes  # type: ignore[attr-defined]
        return [
            Vertical(
                Label("Evaluation", classes="pane-title"),
                Static(Text("No evaluations yet: they appear every eval_every steps.", style="dim"), id="eval-empty"),
                DataTable(id="eval-table", cursor_type="row", zebra_stripes=True),
                id="eval-pane",
                classes="pane",
            ),
            Vertical(
                Label(Text("Probes ([MASK] sentences)"), classes="pane-title"),
                TextArea(
                    "\n".join(probes), id="probe-input", soft_wrap=True, show_line_numbers=False, tab_behavior="focus"
                ),
                VerticalScroll(Static("", id="probe-results"), id="probe-scroll"),
                id="probe-pane",
                classes="pane",
            ),
            Vertical(
                Label("Microscope (m: back to the probes)", classes="pane-title"),
                VerticalScroll(Static("", id="microscope-text"), id="microscope-scroll"),
                id="microscope-pane",
                classes="pane",
            ),
            Vertical(
                Label("Events", classes="pane-title"),
                RichLog(id="event-log", wrap=True, max_lines=1000, markup=False, min_width=20),
                id="log-pane",
                classes="pane",
            ),
        ]

    def on_built(self) -> None:
        if self.screen.focused is None:
            self.query_one("#event-log", RichLog).focus()


NO_OVERLAY = "-"
"""The picker's option id of "no overlay"."""


class TrainScreen(Screen):
    """Job controls, live charts of loss / loss parts / learning rate, eval table, probe panel and event log."""

    TITLE = "Train"
    BINDINGS = [
        Binding("s", "start", "Start", id="train.start", tooltip="Start the selected job (pretraining by default)"),
        Binding("x", "stop", "Stop", id="train.stop", tooltip="Stop the running job; it saves a checkpoint first"),
        Binding(
            "r", "resume", "Resume", id="train.resume", tooltip="Resume the selected job from its latest checkpoint"
        ),
        Binding("j", "pick_job", "Job", id="train.pick_job", tooltip="Choose pretraining or a fine-tuning task"),
        Binding(
            "e",
            "edit_probes",
            "Probes",
            id="train.edit_probes",
            tooltip="Edit the probe sentences shown at every evaluation",
        ),
        Binding(
            "o",
            "pick_overlay",
            "Overlay",
            id="train.overlay",
            tooltip="Draw an earlier run's curves on the charts, or clear them",
        ),
        Binding(
            "m",
            "toggle_microscope",
            "Microscope",
            id="train.microscope",
            tooltip="Show the heads grid, head-type shares and probe time-lapse instead of the evaluation and probes",
        ),
        Binding(
            "ctrl+e",
            "export",
            "Export",
            id="train.export",
            show=False,  # the footer is full at 120 columns; ? and ctrl+p list it
            tooltip="Save the run's microscope (probes over steps, heads grid) as a standalone HTML page",
        ),
        Binding(
            "h",
            "reload_history",
            "History",
            id="train.history",
            show=False,
            tooltip="Reload the last run from metrics.jsonl",
        ),
    ]

    def __init__(self) -> None:
        super().__init__(id="train-screen")
        self._drawn_version = -1
        self._state_id = 0
        self._log_seq = 0
        self._eval_key: tuple = ()
        self._probe_key: tuple = ()
        self._scope_key: tuple = ()
        self._status_text: Text | None = None
        self._charts_drawn_at = 0.0
        self.overlay: Overlay | None = None
        """An earlier run drawn over the current one (`o`); it stays while runs start, stream and finish."""
        self.overlay_key = ""
        self._picking = False

    @property
    def bert2(self) -> Bert2App:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        yield NavBar("train")
        with Horizontal(id="train-controls"):
            yield Select(
                JOB_CHOICES,
                value="pretrain",
                allow_blank=False,
                id="job-kind",
                compact=True,
                tooltip="Which job `s` starts and `r` resumes (j)",
            )
            with Vertical(id="train-status"):
                yield Static("", id="status-line")
                with Horizontal(id="progress-row"):
                    yield ProgressBar(total=None, show_eta=False, id="train-progress")
                    yield Static("", id="stats-line")
        yield ChartsRow(id="charts")
        yield BottomRow(id="train-bottom")
        yield KeysFooter()

    def on_mount(self) -> None:
        self.set_interval(0.25, self.tick, name="train-redraw")
        self.call_after_refresh(self.tick, True)

    def on_screen_resume(self) -> None:
        self.call_after_refresh(self.tick, True)

    def on_resize(self) -> None:
        # At 80x24 the three bottom panes and the status line do not fit: the stylesheet's .narrow / .short rules
        # hide the event log (the status line and the log file keep the messages) and shorten the rows.
        self.set_class(self.size.width < 110, "narrow")
        self.set_class(self.size.height < 32, "short")
        self.call_after_refresh(self.tick, True)

    def action_toggle_microscope(self) -> None:
        self.toggle_class("microscope")
        self._scope_key = ()
        self.tick(True)

    def action_export(self) -> None:
        """Write the run's evaluations as the HTML page `bert2 timelapse --html` makes, under paths.root/exports/
        (a new file each time: write_new never replaces one)."""

        from bert2.html_export import timelapse_page

        from ..widgets.microscope import frames_of

        st = self.bert2.run_state
        frames = frames_of(st.probe_history, st.heads, st.evals)
        if not frames:
            self.notify("nothing to export yet: the microscope fills at the first evaluation", severity="warning")
            return
        text = timelapse_page(frames, f"Watching BERT learn: {st.task or st.kind}")
        save_page(self, self.bert2.config.paths.root, f"microscope-{st.kind or 'run'}", text)

    # ------------------------------------------------------------------------------------------- actions
    def selected_job(self) -> str:
        value = self.query_one("#job-kind", Select).value
        return "pretrain" if value is Select.NULL else str(value)

    @on(Select.Changed, "#job-kind")
    def _job_changed(self, event: Select.Changed) -> None:
        event.stop()
        self.post_message(JobChoiceChanged(self.selected_job()))

    def on_job_shown(self, message: JobShown) -> None:
        self.query_one("#job-kind", Select).value = message.choice

    def action_start(self) -> None:
        self.post_message(StartJob(self.selected_job()))

    def action_stop(self) -> None:
        self.post_message(StopJob())

    def action_resume(self) -> None:
        self.post_message(StartJob(self.selected_job(), resume=True))

    def action_pick_job(self) -> None:
        select = self.query_one("#job-kind", Select)
        select.focus()
        select.expanded = True

    def action_edit_probes(self) -> None:
        if not self.query_one(BottomRow).built:
            return
        editor = self.query_one("#probe-input", TextArea)
        if not editor.display:
            self.notify(
                "[MASK] probes belong to pretraining runs; a fine-tuning run shows validation samples",
                severity="warning",
            )
            return
        editor.focus()

    def action_reload_history(self) -> None:
        self.post_message(ReloadHistory())

    def action_pick_overlay(self) -> None:
        """List the runs of both metrics.jsonl files (in a worker: a long history is megabytes of JSON), then pick."""
        if self._picking:
            return
        self._picking = True
        self._list_runs(self.bert2.config.paths.root)

    @work(thread=True, exclusive=True, group="overlay", exit_on_error=False)
    def _list_runs(self, root: str) -> None:
        try:
            from ..history import list_runs  # plotext (~50 ms), via the chart helpers: after the first frame

            self.post_message(RunsListed(list_runs(root)))
        except Exception as exc:  # a bug must not leave the key dead: say what happened instead
            self.post_message(RunsListed(None, f"{type(exc).__name__}: {exc}"))

    def on_runs_listed(self, message: RunsListed) -> None:
        if message.runs is None:
            self._picking = False
            self.notify(f"could not read the run history: {message.error}", severity="error", title="Overlay")
            return
        listing = message.runs
        st = self.bert2.run_state
        runs: dict[str, HistoryRun] = {r.key: r for r in listing.runs}
        active = self.overlay_key if self.overlay_key in runs else NO_OVERLAY
        options: list[tuple[str, Any]] = [
            (
                NO_OVERLAY,
                Text.assemble(
                    ("● " if active == NO_OVERLAY else "  ", "bold magenta"),
                    ("no overlay", "italic"),
                    ("  (clear the overlay)", "dim"),
                ),
            )
        ]
        for r in listing.runs:
            shown = bool(st.started) and st.started in r.segment_starts
            options.append((r.key, r.row(shown=shown, active=r.key == active, running=self.bert2.job_active)))

        def chosen(key: str | None) -> None:
            self._picking = False
            if key is None:  # escape: leave the overlay as it is
                return
            run = runs.get(key)
            self.set_overlay(run.overlay if run is not None else None, key if run is not None else "")
            if run is not None:
                self.notify(f"overlay: {run.label} ({run.what}, step {run.step})", title="Overlay")

        self.app.push_screen(
            ChoiceScreen("Overlay an earlier run on the charts", options, listing.message(), highlight=active), chosen
        )

    def set_overlay(self, overlay: Overlay | None, key: str = "") -> None:
        """Draw `overlay` (None: clear it) on the charts from now on."""
        self.overlay, self.overlay_key = overlay, key if overlay is not None else ""
        self.tick(True)

    @on(TextArea.Changed, "#probe-input")
    def _probes_changed(self, event: TextArea.Changed) -> None:
        lines = tuple(line.strip() for line in event.text_area.text.splitlines() if line.strip())
        self.post_message(ProbesChanged(lines))
        missing = [i + 1 for i, line in enumerate(lines) if "[MASK]" not in line]
        hint = self.query_one("#probe-pane .pane-title", Label)
        if missing:
            hint.update(Text(f"Probes: line {', '.join(map(str, missing))}: no [MASK]", style="bold yellow"))
        elif self.bert2.job_active:
            hint.update(Text("Probes (apply at the next start)", style="italic"))
        else:
            hint.update(Text("Probes ([MASK] sentences)"))

    # ------------------------------------------------------------------------------------------- drawing
    def tick(self, force: bool = False) -> None:
        """Redraw from the app's RunState when it changed (the dirty flag) and this screen is showing."""
        state = self.bert2.run_state
        bottom = self.query_one(BottomRow).built  # the first frame may still be on its way (see AfterFirstFrame)
        if id(state) != self._state_id and bottom:  # a new state object (history loaded, new run): redraw all
            self._state_id, self._log_seq, self._eval_key, self._probe_key = id(state), 0, (), ()
            self.query_one("#event-log", RichLog).clear()
            force = True
        if not force and (state.version == self._drawn_version or not self.is_current):
            return
        self._drawn_version = state.version
        self._draw_status(state)
        self._draw_charts(state, force)
        if bottom:
            self._draw_evals(state)
            self._draw_probes(state)
            self._draw_microscope(state)
            self._draw_log(state)

    def _draw_status(self, st: RunState) -> None:
        app = self.bert2
        job = app.job
        dot = {
            "running": ("●", "green"),
            "preparing": ("◌", "yellow"),
            "stopping": ("◍", "yellow"),
            "done": ("✓", "green"),
            "stopped": ("■", "yellow"),
            "error": ("✗", "bold red"),
            "history": ("◷", "cyan"),
            "external": ("●", "magenta"),
            "idle": ("○", "dim"),
        }.get(st.status, ("○", "dim"))
        text = Text()
        text.append(f"{dot[0]} ", style=dot[1])
        what = job.spec.title if job is not None else (st.kind or "no run yet")
        if st.status == "preparing":
            text.append(f"preparing {what}: data, tokenizer and model…", style="bold")
        elif st.status == "running":
            text.append(f"running {what}", style="bold")
        elif st.status == "stopping":
            text.append(f"stopping {what}: finishing the step and saving a checkpoint…", style="bold yellow")
        elif st.status in ("history", "external"):
            text.append(st.status_text or "last run", style="bold")
        elif st.status == "idle":
            text.append("idle — s: start pretraining   r: resume   j: pick a job", style="bold")
        else:
            text.append(st.status_text or st.status, style="bold " + dot[1])
        if st.task and not self.has_class("narrow"):  # 80 columns: the state and the job, not the details
            text.append(f"   {st.kind} · {st.task}", style="dim")
            if st.device:
                text.append(f" · {st.device}", style="dim")
            if st.num_parameters:
                text.append(f" · {st.num_parameters / 1e6:.2f}M params", style="dim")
        # Both lines have a fixed size (app.tcss): updating them needs a repaint, not a layout of the whole screen,
        # which several times a second took ~10% of a core that the trainer, on a 2-core laptop, is using.
        status = self.query_one("#status-line", Static)
        if text != self._status_text:
            self._status_text = text
            status.update(text, layout=False)
        bar = self.query_one("#train-progress", ProgressBar)
        if st.total_steps:
            bar.update(total=st.total_steps, progress=min(st.step, st.total_steps))
        elif st.status == "preparing":
            bar.update(total=None)
        else:
            bar.update(total=100, progress=0)
        total = f"/{st.total_steps}" if st.total_steps else ""
        eta = fmt_duration(st.eta_s) if st.status in ("running", "stopping", "external") else "–"
        if self.has_class("narrow"):  # 80 columns: what fits beside the bar (elapsed and epoch are in the log)
            stats = f"{st.step}{total} · {st.tokens_per_s:,.0f} tok/s · ETA {eta}"
        else:
            stats = (
                f"step {st.step}{total} · epoch {st.epoch} · {st.tokens_per_s:,.0f} tok/s · "
                f"{fmt_duration(st.elapsed_s)} elapsed · ETA {eta}"
            )
        self.query_one("#stats-line", Static).update(stats, layout=False)

    CHART_INTERVAL_S = 1.0
    """While a job runs, charts redraw at most this often (the text lines keep the 0.25 s tick). Each redraw of
    the three plotext charts is ~10 ms of the UI thread, and on a 2-core machine every ms of it is taken from the
    trainer's two threads."""

    def _draw_charts(self, st: RunState, force: bool = False) -> None:
        if not self.query_one(ChartsRow).built:
            return  # the first frame is still being drawn; the row asks for a redraw once it is built
        now = time.monotonic()
        if not force and st.status == "running" and now - self._charts_drawn_at < self.CHART_INTERVAL_S:
            self._drawn_version = -1  # come back at the next tick: the newest points are not drawn yet
            return
        self._charts_drawn_at = now
        loss, parts, lr = (self.query_one(f"#chart-{name}") for name in ("loss", "parts", "lr"))
        evals = [(step, m["loss"]) for step, m, _ in st.evals if isinstance(m.get("loss"), (int, float))]
        part_series = {k: v for k, v in st.series.items() if k != "loss"}
        parts.empty_text = "no loss parts" if st.series and not part_series else "no data yet"
        loss_refs, part_refs, loss_marks, part_marks = baseline_lines(st)
        ov = self.overlay
        if ov is None:
            loss.set_series(
                {"train": st.series.get("loss", ())},
                markers={"eval": evals} if evals else None,
                references=loss_refs,
                marks=loss_marks,
            )
            parts.set_series(part_series, references=part_refs, marks=part_marks)
            lr.set_series({"lr": st.lr})
            return

        def tag(chart, *names: str) -> str:  # the overlay's run name, short where the legend has no room for it
            return f" ({ov.label})" if chart.legend_fits(*(f"{n} ({ov.label})" for n in names)) else f" ({ov.short})"

        t = tag(loss, "train", "eval")
        loss.set_series(
            {"train": st.series.get("loss", ())},
            markers={"eval": evals} if evals else None,
            overlay={f"train{t}": ov.loss},
            overlay_markers={f"eval{t}": ov.evals} if ov.evals else None,
            references=loss_refs,
            marks=loss_marks,
        )
        t = tag(parts, *ov.parts)
        parts.set_series(
            part_series, overlay={f"{k}{t}": v for k, v in ov.parts.items()}, references=part_refs, marks=part_marks
        )
        t = tag(lr, "lr")
        lr.set_series({"lr": st.lr}, overlay={f"lr{t}": ov.lr})

    def _draw_evals(self, st: RunState) -> None:
        key = (len(st.evals), st.evals[-1][0] if st.evals else None)
        if key == self._eval_key:
            return
        self._eval_key = key
        table = self.query_one("#eval-table", DataTable)
        self.query_one("#eval-empty", Static).display = not st.evals
        table.display = bool(st.evals)
        names = iter_metric_names(st.evals, limit=4)
        table.clear(columns=True)
        table.add_column("step", key="step")
        for n in names:
            table.add_column(SHORT_METRIC.get(n, n.replace("_", " ")[:9]), key=n)
        table.add_column("", key="best")
        for step, metrics, best in list(st.evals)[-200:]:
            cells = [fmt_metric(n, metrics[n]) if isinstance(metrics.get(n), (int, float)) else "–" for n in names]
            table.add_row(str(step), *cells, Text("★", style="yellow") if best else "")
        if table.row_count:
            table.move_cursor(row=table.row_count - 1)

    def _draw_probes(self, st: RunState) -> None:
        key = (st.probe_step, len(st.probes), st.kind)
        if key == self._probe_key:
            return
        self._probe_key = key
        title = self.query_one("#probe-pane .pane-title", Label)
        editor = self.query_one("#probe-input", TextArea)
        editor.display = st.kind != "finetune"  # [MASK] probes are a pretraining run's; fine-tuning shows samples
        if st.kind == "finetune":
            title.update(Text("Samples (validation, each eval)"))
        elif not editor.has_focus:
            title.update(Text("Probes ([MASK] sentences)"))
        self.query_one("#probe-results", Static).update(probe_text(st))

    def _draw_microscope(self, st: RunState) -> None:
        if not self.has_class("microscope"):
            return
        key = (len(st.heads), st.heads[-1][0] if st.heads else None, len(st.probe_history), st.probe_step)
        if key == self._scope_key:
            return
        self._scope_key = key
        from ..widgets.microscope import microscope_text

        self.query_one("#microscope-text", Static).update(microscope_text(st.probe_history, st.heads))

    def _draw_log(self, st: RunState) -> None:
        log = self.query_one("#event-log", RichLog)
        for line in st.log:
            if line.seq <= self._log_seq:
                continue
            self._log_seq = line.seq
            stamp = time.strftime("%H:%M:%S", time.localtime(line.time))
            text = Text(f"{stamp} ", style="dim")
            text.append(line.text, style=LEVEL_STYLE.get(line.level, ""))
            log.write(text)
