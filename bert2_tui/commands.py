"""Command palette provider: every action of every screen, searchable with ctrl+p.

The list is built from the app's and the screens' BINDINGS (plus a few actions without a key), so a new binding
shows up here and in the help screen without extra work.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Callable, Iterator

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from .app import Bert2App


def all_commands(app: "Bert2App") -> Iterator[tuple[str, str, Callable[[], object]]]:
    """(title, help, callback) for every action the user can run."""
    from .app import SCREEN_TITLES, screen_classes

    for binding in app.BINDINGS:
        if binding.action.startswith("goto") or not binding.description:  # type: ignore[union-attr]
            continue
        yield (binding.description, binding.tooltip or binding.description,  # type: ignore[union-attr]
               partial(app.run_action, binding.action))  # type: ignore[union-attr]
    for mode, title in SCREEN_TITLES.items():
        yield (f"Go to {title}", f"Show the {title} screen ({list(SCREEN_TITLES).index(mode) + 1})",
               partial(app.switch_screen_mode, mode))
    for mode, cls in screen_classes().items():
        title = SCREEN_TITLES[mode]
        for binding in cls.BINDINGS:
            if not binding.description:  # type: ignore[union-attr]
                continue
            yield (f"{title}: {binding.description}", binding.tooltip or binding.description,  # type: ignore
                   partial(app.run_screen_action, mode, binding.action))  # type: ignore[union-attr]
    for task in ("classify", "qa", "qa-span"):
        yield (f"Train: Start fine-tuning ({task})", f"Fine-tune the {task} task from the default checkpoint",
               partial(app.start_selected, task))
    yield ("Train: Start pretraining", "Start a pretraining run with the current config",
           partial(app.start_selected, "pretrain"))
    for tool, title in (("mask", "Fill mask"), ("qa", "Question answering"), ("classify", "Classify"),
                        ("similarity", "Similarity"), ("attention", "Attention view")):
        yield (f"Playground: {title}", f"Open the playground's {title.lower()} tool",
               partial(app.open_playground_tool, tool))


class Bert2Commands(Provider):
    """All bert2-tui actions for the command palette."""

    async def discover(self) -> Hits:
        for title, help_text, callback in all_commands(self.app):  # type: ignore[arg-type]
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in all_commands(self.app):  # type: ignore[arg-type]
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, text=title, help=help_text)
