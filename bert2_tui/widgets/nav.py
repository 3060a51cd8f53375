"""The top bar: app name, the four screens with their number keys (current one highlighted), and the job status."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.events import Click, Resize
from textual.widgets import Footer, Static

from ..registry import SCREENS


class NavTab(Static):
    def __init__(self, mode: str, key: str, title: str, active: bool):
        super().__init__(Text.assemble((f"{key} ", "bold"), title), classes="nav-tab" + (" -active" if active else ""))
        self.mode = mode
        self.tooltip = f"Go to {title} (key {key})"

    def on_click(self, event: Click) -> None:
        event.stop()
        self.app.run_action(f"goto('{self.mode}')")


class NavBar(Horizontal):
    """Docked at the top of every screen."""

    def __init__(self, current: str):
        super().__init__(id="nav")
        self.current = current
        self._job_text: Text | str = ""

    def compose(self) -> ComposeResult:
        yield Static(Text("bert2", style="bold"), classes="nav-brand")
        for entry in SCREENS:
            yield NavTab(entry.mode, entry.key, entry.title, entry.mode == self.current)
        yield Static(self._job_text, id="nav-job")

    def on_mount(self) -> None:
        self.call_after_refresh(self.app.refresh_nav)  # type: ignore[attr-defined]

    def set_job(self, text: Text) -> None:
        # Fixed size in app.tcss, so no layout pass: a layout of the whole screen on every step count change
        # cost the UI thread ~40 ms each time and, on two cores, the trainer as much.
        self._job_text = text
        try:
            label = self.query_one("#nav-job", Static)
        except NoMatches:  # the app's refresh_nav can run before compose: compose then shows _job_text
            return
        label.update(text, layout=False)


class KeysFooter(Footer):
    """The key-bindings footer of every screen; below 110 columns in Textual's compact style (no padding around
    the keys), so that 80 columns show two or three more of them."""

    def on_resize(self, event: Resize) -> None:
        self.compact = event.size.width < 110
