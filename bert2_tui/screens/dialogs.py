"""Modal dialogs: confirm, text prompt, a choice from a list, busy notice, and the key help screen."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no question; `y`/enter confirms, `n`/escape cancels."""

    BINDINGS = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes", tooltip="Confirm"),
        Binding("n,escape", "answer(False)", "No", id="confirm.no", tooltip="Cancel"),
    ]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No", danger: bool = False):
        super().__init__(classes="dialog")
        self.question = question
        self.yes, self.no, self.danger = yes, no, danger

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.question, id="question")
            with Horizontal(id="buttons"):
                yield Button(f"{self.yes} (y)", id="yes", variant="error" if self.danger else "primary")
                yield Button(f"{self.no} (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no" if self.danger else "#yes", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, value: bool) -> None:
        self.dismiss(value)


class PromptScreen(ModalScreen[str | None]):
    """One line of text (a file path); enter accepts, escape cancels."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="prompt.cancel", tooltip="Close without a value")]

    def __init__(self, title: str, value: str = "", placeholder: str = ""):
        super().__init__(classes="dialog")
        self.title_text, self.value, self.placeholder = title, value, placeholder

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Label(self.title_text, id="question")
            yield Input(self.value, placeholder=self.placeholder, id="prompt-input")
            yield Static("enter: accept   escape: cancel", classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ChoiceScreen(ModalScreen[str | None]):
    """One entry from a list (e.g. the run to overlay); enter or a click chooses (its id), escape cancels (None).

    `options` are (id, prompt) pairs, the prompt any rich renderable; `message` is shown above the list (why it is
    empty, what was skipped); `highlight` is the id the cursor starts on.
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="choice.cancel", tooltip="Close without choosing")]

    def __init__(self, title: str, options: list[tuple[str, Any]], message: str = "", highlight: str | None = None):
        super().__init__(classes="dialog")
        self.title_text, self.options, self.message, self.highlight = title, list(options), message, highlight

    def compose(self) -> ComposeResult:
        with Vertical(id="choice-dialog"):
            yield Label(self.title_text, id="question")
            if self.message:
                yield Static(self.message, id="choice-message")
            yield OptionList(*(Option(prompt, id=oid) for oid, prompt in self.options), id="choice-list")
            yield Static("↑↓: move   enter: choose   escape: cancel", classes="hint")

    def on_mount(self) -> None:
        options = self.query_one("#choice-list", OptionList)
        options.focus()
        ids = [oid for oid, _ in self.options]
        if self.highlight in ids:
            options.highlighted = ids.index(self.highlight)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class BusyScreen(ModalScreen[None]):
    """A notice that cannot be dismissed by the user (e.g. 'saving checkpoint...' while quitting)."""

    def __init__(self, message: str):
        super().__init__(classes="dialog")
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(self.message, id="question")

    def set_message(self, message: str) -> None:
        self.query_one("#question", Static).update(message)


def _key_text(binding: Binding, app) -> str:
    key = binding.key_display or ", ".join(
        app.get_key_display(Binding(k.strip(), binding.action)) for k in binding.key.split(",")
    )
    return key


class HelpScreen(ModalScreen[None]):
    """Every key of every screen, read from the BINDINGS themselves so this list can never go stale."""

    BINDINGS = [Binding("escape,question_mark,q", "close", "Close", id="help.close", tooltip="Close the help")]

    def __init__(self, sections: Iterable[tuple[str, list[Binding]]]):
        super().__init__(classes="dialog")
        self.sections = list(sections)

    def compose(self) -> ComposeResult:
        with Vertical(id="help-dialog"):
            yield Static(Text("bert2-tui — keys", style="bold"), id="help-title")
            with VerticalScroll(id="help-body"):
                for title, bindings in self.sections:
                    table = Table(
                        title=title,
                        title_justify="left",
                        title_style="bold cyan",
                        expand=True,
                        show_header=False,
                        box=None,
                        padding=(0, 1),
                    )
                    table.add_column("key", style="bold", width=9, no_wrap=True)
                    table.add_column("action", ratio=1)
                    for b in bindings:
                        table.add_row(_key_text(b, self.app), b.description + (f" — {b.tooltip}" if b.tooltip else ""))
                    yield Static(table, classes="help-section")
            yield Static("escape / ? : close    ctrl+p: command palette (every action, searchable)", classes="hint")

    def action_close(self) -> None:
        self.dismiss(None)
