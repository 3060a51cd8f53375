"""The screens of bert2-tui: one entry per app mode, read by the app (MODES, the number-key bindings, help), the
top bar and the command palette.

A screen's module is imported when the screen is first shown, not at start-up: only the Train screen is needed
for the first frame, and importing the others costs ~80-120 ms (the Checkpoints screen's charts import
plotext). That is why an entry names its class by module and name instead of holding it.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from textual.binding import Binding
from textual.screen import Screen

SCREENS_GROUP = Binding.Group("Screens", compact=True)


@dataclass(frozen=True)
class ScreenEntry:
    """One screen: its mode name, the key that shows it, its title and what it is for."""

    mode: str
    key: str
    title: str
    description: str
    """What the screen is for (the key's tooltip)."""
    module: str
    """Its module under bert2_tui.screens."""
    class_name: str

    def screen_class(self) -> type[Screen]:
        # importlib, not an import statement: the module is named by this entry (see the module docstring).
        return getattr(importlib.import_module(f"{__package__}.screens.{self.module}"), self.class_name)

    def new_screen(self) -> Screen:
        """A fresh screen of this mode (the app's MODES call this when the mode is first shown)."""
        return self.screen_class()()

    def binding(self) -> Binding:
        """The app's key binding that shows this screen."""
        return Binding(
            self.key,
            f"goto('{self.mode}')",
            self.title,
            id=f"app.goto_{self.mode}",
            group=SCREENS_GROUP,
            tooltip=self.description,
        )


SCREENS: tuple[ScreenEntry, ...] = (
    ScreenEntry(
        "config", "1", "Config", "Config screen: every setting, presets, save/load TOML", "config", "ConfigScreen"
    ),
    ScreenEntry("train", "2", "Train", "Train screen: start/stop jobs, live charts", "train", "TrainScreen"),
    ScreenEntry(
        "checkpoints",
        "3",
        "Checkpoints",
        "Checkpoints screen: browse, resume, fine-tune, delete",
        "checkpoints",
        "CheckpointsScreen",
    ),
    ScreenEntry(
        "playground",
        "4",
        "Playground",
        "Playground: fill-mask, QA, classification, similarity, attention",
        "playground",
        "PlaygroundScreen",
    ),
    ScreenEntry(
        "inside",
        "5",
        "Inside",
        "Inside BERT: one real batch from text to loss (masks, labels, shapes, attention)",
        "inside",
        "InsideScreen",
    ),
)
"""In the order of their keys (and of the tabs in the top bar)."""
