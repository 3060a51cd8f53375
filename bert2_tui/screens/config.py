"""Config screen: every field of bert2.config, grouped by section, with its docstring as help text.

Validation is the CLI's own: the form's raw values go through `Config.from_dict(strict=True)` (type coercion +
`Config.validate()`), and each FieldError appears under its field's help as you type. Every validation posts a
`ConfigChanged`: a valid form becomes the app's config, so changes apply to the next job; an invalid one keeps the
last valid config and says so.

~90 fields are ~270 widgets. Mounting them all at once takes seconds on a small CPU, so the first section is
composed with the screen and the others are mounted one per refresh afterwards; until a field is mounted its
value lives in `_values` (so validation, save and presets always see the whole config).
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Input, OptionList, Select, Static, Switch
from textual.widgets.option_list import Option

from bert2 import memory
from bert2.config import (
    CHOICES,
    PRESETS,
    SECTIONS,
    Config,
    ConfigError,
    FieldError,
    field_docs,
    field_types,
    load_config,
)

from ..messages import ConfigChanged, ConfigPathChanged
from ..widgets.nav import KeysFooter, NavBar
from .dialogs import PromptScreen

if TYPE_CHECKING:
    from ..app import Bert2App

SECTION_TITLES = {
    "model": "Model",
    "data": "Data",
    "pretrain": "Pretraining",
    "finetune": "Fine-tuning",
    "distill": "Distillation",
    "runtime": "Runtime",
    "paths": "Paths",
}


def dom_key(key: str) -> str:
    return key.replace(".", "--")


def widget_id(key: str) -> str:
    return "f-" + dom_key(key)


def format_value(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    return str(value)


def all_keys() -> list[str]:
    return [f"{section}.{f.name}" for section, cls in SECTIONS.items() for f in fields(cls)]


class ConfigScreen(Screen):
    """The config form. Keys: ctrl+s save, ctrl+o load, ctrl+t preset, ctrl+f filter, ctrl+up/down sections."""

    TITLE = "Config"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save TOML", id="config.save", tooltip="Save the config as a TOML file"),
        Binding("ctrl+o", "load", "Load TOML", id="config.load", tooltip="Load a TOML config file into the form"),
        Binding("ctrl+t", "preset", "Preset", id="config.preset", tooltip="Apply a preset (tiny, mini, small, base)"),
        Binding("ctrl+f", "filter", "Filter", id="config.filter", tooltip="Show only fields matching a word"),
        Binding(
            "ctrl+down",
            "section(1)",
            "Next section",
            id="config.next_section",
            show=False,
            tooltip="Jump to the first field of the next section",
        ),
        Binding(
            "ctrl+up",
            "section(-1)",
            "Prev section",
            id="config.prev_section",
            show=False,
            tooltip="Jump to the first field of the previous section",
        ),
    ]

    def __init__(self) -> None:
        super().__init__(id="config-screen")
        self.errors: list[FieldError] = []
        self._docs: dict[str, str] = {}
        self._types: dict[str, type] = {}
        for section, cls in SECTIONS.items():
            docs, types = field_docs(cls), field_types(cls)
            for f in fields(cls):
                self._docs[f"{section}.{f.name}"] = docs.get(f.name, "")
                self._types[f"{section}.{f.name}"] = types[f.name]
        self._values: dict[str, Any] = {}
        """Value of every field; the source of truth for fields not mounted yet."""
        self._editors: dict[str, Widget] = {}
        self._cells: dict[str, tuple[Static, Widget, Static]] = {}
        self._shown: dict[str, str] = {}
        self._by_key: dict[str, list[str]] = {}
        self._pending_sections: list[str] = []
        self._filter = ""
        self._validation_pending = False

    @property
    def bert2(self) -> Bert2App:
        return self.app  # type: ignore[return-value]

    # ------------------------------------------------------------------------------------------- compose
    def compose(self) -> ComposeResult:
        data = self.bert2.config.to_dict()
        self._values = {key: data[key.split(".")[0]][key.split(".")[1]] for key in all_keys()}
        yield NavBar("config")
        with Horizontal(id="config-toolbar"):
            yield Select(
                [(name, name) for name in PRESETS],
                prompt="apply preset…",
                id="preset",
                compact=True,
                tooltip="Apply a preset over the current values (ctrl+t)",
            )
            yield Input(placeholder="filter fields (ctrl+f)", id="config-filter", compact=True)
            yield Static("", id="config-status")
        with Horizontal(id="config-body"):
            yield OptionList(*[Option(SECTION_TITLES.get(s, s), id=s) for s in SECTIONS], id="config-sections")
            with VerticalScroll(id="config-form"):
                for i, section in enumerate(SECTIONS):
                    yield Static(
                        Text(f"{SECTION_TITLES.get(section, section)}  [{section}]", style="bold"),
                        classes="section-title",
                        id=f"section-{section}",
                    )
                    with Grid(classes="section-grid", id=f"grid-{section}"):
                        if i == 0:
                            yield from self._field_widgets(section)
        yield KeysFooter()

    def _field_widgets(self, section: str) -> list[Widget]:
        out: list[Widget] = []
        for key in all_keys():
            if key.split(".")[0] != section:
                continue
            name = Static(key.split(".")[1], classes="field-name", id="name-" + dom_key(key))
            editor = self._editor(key, self._types[key], self._values[key], self._docs[key])
            help_ = Static(Text(self._docs[key]), classes="field-help", id="help-" + dom_key(key))
            self._editors[key] = editor
            self._cells[key] = (name, editor, help_)
            out += [name, editor, help_]
        return out

    def _editor(self, key: str, typ: type, value: Any, doc: str) -> Widget:
        wid = widget_id(key)
        tip = Text(doc)
        if typ is bool:
            return Switch(value=bool(value), id=wid, tooltip=tip, classes="field-editor")
        if key in CHOICES:
            options = list(CHOICES[key])
            if value not in options:
                options.append(str(value))
            return Select(
                [(o, o) for o in options],
                value=value,
                allow_blank=False,
                id=wid,
                tooltip=tip,
                compact=True,
                classes="field-editor",
            )
        return Input(format_value(value), id=wid, tooltip=tip, classes="field-editor field-input", compact=True)

    def on_mount(self) -> None:
        self._pending_sections = list(SECTIONS)[1:]
        self.validate_form()
        # The section list, not a text field: number keys keep switching screens until the user enters a field.
        self.query_one("#config-sections", OptionList).focus()
        self.call_after_refresh(self._mount_next_section)

    def _mount_next_section(self) -> None:
        """Mount one more section's fields, then yield a frame before the next (the screen stays responsive)."""
        if not self._pending_sections:
            return
        section = self._pending_sections.pop(0)
        self.query_one(f"#grid-{section}", Grid).mount_all(self._field_widgets(section))
        self._refresh_rows([k for k in self._cells if k.startswith(section + ".")], force=True)
        if self._filter:
            self.apply_filter(self._filter)
        self.call_after_refresh(self._mount_next_section)

    @property
    def fully_mounted(self) -> bool:
        return not self._pending_sections

    def mount_all_sections(self) -> None:
        while self._pending_sections:
            section = self._pending_sections.pop(0)
            self.query_one(f"#grid-{section}", Grid).mount_all(self._field_widgets(section))
            self._refresh_rows([k for k in self._cells if k.startswith(section + ".")], force=True)

    # ----------------------------------------------------------------------------------------- form <-> cfg
    def _read_editor(self, key: str) -> Any:
        w = self._editors[key]  # a Switch, a Select or an Input (see _editor)
        if isinstance(w, Select):
            return w.value if w.value is not Select.NULL else ""
        return w.value  # type: ignore[attr-defined]

    def form_data(self) -> dict[str, dict[str, Any]]:
        data: dict[str, dict[str, Any]] = {s: {} for s in SECTIONS}
        for key in all_keys():
            section, name = key.split(".")
            data[section][name] = self._read_editor(key) if key in self._editors else self._values[key]
        return data

    def set_values(self, values: Config | dict[str, dict[str, Any]]) -> None:
        """Put a config (or a nested dict of values, possibly invalid) into the form and validate it once."""
        data = values.to_dict() if isinstance(values, Config) else values
        for key in all_keys():
            section, name = key.split(".")
            if name not in data.get(section, {}):
                continue
            value = data[section][name]
            self._values[key] = value
            w = self._editors.get(key)
            if isinstance(w, Switch):
                w.value = bool(value)
            elif isinstance(w, Select):
                if value not in CHOICES.get(key, ()):  # a value outside the choices: show it, validate flags it
                    w.set_options([(o, o) for o in (*CHOICES.get(key, ()), str(value))])
                w.value = value
            elif isinstance(w, Input):
                w.value = format_value(value)
        self.validate_form()

    def on_resize(self) -> None:
        # Below 110 columns each field's explanation goes under its name and editor (beside them it would get a
        # handful of columns), and the status line drops the memory breakdown (its tooltip keeps it).
        self.set_class(self.size.width < 110, "narrow")
        if not self.errors:
            self._show_valid()

    def _show_valid(self) -> None:
        """The valid-config status line, as long as its row allows: the memory breakdown only where it fits on
        one line (always in the tooltip)."""
        status = self.query_one("#config-status", Static)
        est = getattr(self, "_estimate", None)
        head = "✓ valid (next job)" if self.has_class("narrow") else "✓ valid — applies to the next job"
        text = Text(head, style="green")
        if est is not None:
            full = f" · {est.summary()}"
            short = full.split(" (weights")[0]
            room = max(20, (self.size.width or 120) - 4)
            text.append(full if len(head) + len(full) <= room else short, style="dim")
            status.tooltip = est.summary()
        status.update(text)

    def validate_form(self, data: dict[str, dict[str, Any]] | None = None) -> list[FieldError]:
        """Run the CLI's validation on the form; show each error under its field; post the config if valid."""
        data = self.form_data() if data is None else data
        try:
            cfg = Config.from_dict(data, strict=True)
            errors: list[FieldError] = []
        except ConfigError as exc:
            cfg, errors = None, list(exc.errors)
        estimate = None
        if cfg is not None:  # a valid config that cannot fit in memory is an error of the field to change
            estimate = memory.estimate(cfg)
            errors = memory.refusal(estimate)
            if errors:
                cfg = None
        self.errors = errors
        self._by_key = {}
        for e in errors:
            self._by_key.setdefault(e.key, []).append(e.message)
        self._refresh_rows(list(self._cells))
        self.post_message(ConfigChanged(cfg, errors))
        status = self.query_one("#config-status", Static)
        if cfg is not None:
            self._estimate = estimate
            self._show_valid()
        else:
            self._estimate = None
            status.tooltip = None
            orphan = [str(e) for e in errors if e.key not in self._docs]
            text = f"✗ {len(errors)} error{'s' * (len(errors) != 1)} — the next job uses the last valid config"
            if orphan:
                text += ": " + "; ".join(orphan)
            status.update(Text(text, style="bold red"))
        return errors

    def _refresh_rows(self, keys: list[str], force: bool = False) -> None:
        """Show each field's error under its help text; touch only the rows whose error changed."""
        for key in keys:
            shown = "; ".join(self._by_key.get(key, []))
            if not force and self._shown.get(key, "") == shown:
                continue
            self._shown[key] = shown
            name, editor, help_ = self._cells[key]
            text = Text(self._docs[key])
            if shown:
                text.append("\n✗ " + shown, style="bold red")
            help_.update(text)
            for w in (name, editor, help_):
                w.set_class(bool(shown), "-invalid")

    def error_text(self, key: str) -> str:
        """The error shown for `key` ('' when valid)."""
        return self._shown.get(key, "")

    @on(Input.Changed, ".field-input")
    @on(Switch.Changed)
    def _field_changed(self, event: Any) -> None:
        event.stop()
        self._schedule_validation()

    def _schedule_validation(self) -> None:
        """Validate once per burst of changes (a preset or a loaded file changes dozens of fields at once)."""
        if not self._validation_pending:
            self._validation_pending = True
            self.call_later(self._deferred_validation)

    def _deferred_validation(self) -> None:
        self._validation_pending = False
        self.validate_form()

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        if event.select.id == "preset":
            if event.value is not Select.NULL:
                self.apply_preset(str(event.value))
            return
        self._schedule_validation()

    # ----------------------------------------------------------------------------------- filter, sections
    @on(Input.Changed, "#config-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self.apply_filter(event.value)

    def apply_filter(self, word: str) -> None:
        """Show only fields whose name or help contains `word`; sections without a match hide their title."""
        self._filter = word = word.strip().lower()
        visible_sections: set[str] = set()
        for key, cells in self._cells.items():
            show = not word or word in key.lower() or word in self._docs[key].lower()
            for w in cells:
                w.display = show
            if show:
                visible_sections.add(key.split(".")[0])
        for section in SECTIONS:
            mounted = any(k.startswith(section + ".") for k in self._cells)
            self.query_one(f"#section-{section}").display = not word or section in visible_sections or not mounted

    def visible_keys(self) -> list[str]:
        return [k for k, cells in self._cells.items() if cells[0].display]

    @on(OptionList.OptionSelected, "#config-sections")
    def _goto_section(self, event: OptionList.OptionSelected) -> None:
        self.goto_section(str(event.option.id))

    def goto_section(self, section: str) -> None:
        if section in self._pending_sections:
            self.mount_all_sections()
        title = self.query_one(f"#section-{section}")
        self.query_one("#config-form", VerticalScroll).scroll_to_widget(title, top=True, animate=False)
        for key, (name, editor, _) in self._cells.items():
            if key.startswith(section + ".") and name.display:
                editor.focus(scroll_visible=False)
                break

    # --------------------------------------------------------------------------------------------- actions
    def apply_preset(self, name: str) -> None:
        """Preset values over the current form; if they clash with other fields, the errors show inline."""
        if name not in PRESETS:
            self.notify(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}", severity="error")
            return
        data = self.form_data()
        for section, values in PRESETS[name].items():
            data.setdefault(section, {}).update(values)
        self.set_values(data)
        self.query_one("#preset", Select).clear()
        n = len(self.errors)
        self.notify(
            f"preset {name} applied" + (f"; {n} field(s) now need a fix" if n else ""),
            title="Config",
            severity="warning" if n else "information",
        )

    def action_preset(self) -> None:
        select = self.query_one("#preset", Select)
        select.focus()
        select.expanded = True

    def action_filter(self) -> None:
        self.query_one("#config-filter", Input).focus()

    def action_section(self, delta: int) -> None:
        sections = list(SECTIONS)
        current = 0
        for key, cells in self._cells.items():
            if self.focused in cells:
                current = sections.index(key.split(".")[0])
                break
        self.goto_section(sections[(current + delta) % len(sections)])

    def action_save(self) -> None:
        errors = self.validate_form()
        if errors:
            self.notify(
                f"fix {len(errors)} error(s) before saving: " + "; ".join(map(str, errors[:3])),
                severity="error",
                title="Save",
            )
            return
        default = self.bert2.config_path or "bert2.toml"

        def done(path: str | None) -> None:
            if not path:
                return
            try:
                saved = self.bert2.config.save(path)
            except OSError as exc:
                self.notify(f"could not save {path}: {exc.strerror or exc}", severity="error", title="Save")
                return
            self.post_message(ConfigPathChanged(str(saved)))
            self.notify(f"saved {saved}", title="Config")

        self.app.push_screen(PromptScreen("Save config as TOML", default), done)

    def action_load(self) -> None:
        default = self.bert2.config_path or "bert2.toml"

        def done(path: str | None) -> None:
            if path:
                self.load_file(path)

        self.app.push_screen(PromptScreen("Load config from TOML", default), done)

    def load_file(self, path: str) -> bool:
        try:
            cfg = load_config(path)
        except ConfigError as exc:
            self.notify("\n".join(str(e) for e in exc.errors[:6]), severity="error", title=f"Load {Path(path).name}")
            return False
        self.set_values(cfg)
        self.post_message(ConfigPathChanged(path))
        self.notify(f"loaded {path}", title="Config")
        return True
