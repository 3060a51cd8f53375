"""Command palette provider: every action of every screen, searchable with ctrl+p.

The list is built from the app's and the screens' BINDINGS (plus a few actions without a key), so a new binding
shows up here and in the help screen without extra work. The screens come from the registry, not from the app.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

from bert2.registry import FINETUNE_TASKS

from .registry import SCREENS

PLAYGROUND_TOOLS = (
    ("mask", "Fill mask"),
    ("qa", "Question answering"),
    ("classify", "Classify"),
    ("ner", "Entities"),
    ("similarity", "Similarity"),
    ("attention", "Attention view"),
)


def all_commands(app: Any) -> Iterator[tuple[str, str, Callable[[], object]]]:
    """(title, help, callback) for every action the user can run in `app` (the bert2 app)."""
    for binding in app.BINDINGS:
        if binding.action.startswith("goto") or not binding.description:
            continue
        yield binding.description, binding.tooltip or binding.description, partial(app.run_action, binding.action)
    for entry in SCREENS:
        yield (
            f"Go to {entry.title}",
            f"Show the {entry.title} screen ({entry.key})",
            partial(app.switch_screen_mode, entry.mode),
        )
    for entry in SCREENS:
        for binding in entry.screen_class().BINDINGS:
            if not binding.description:  # type: ignore[union-attr]
                continue
            yield (
                f"{entry.title}: {binding.description}",
                binding.tooltip or binding.description,  # type: ignore
                partial(app.run_screen_action, entry.mode, binding.action),
            )  # type: ignore[union-attr]
    for task in FINETUNE_TASKS:
        yield (
            f"Train: Start fine-tuning ({task})",
            f"Fine-tune the {task} task from the default checkpoint",
            partial(app.start_selected, task),
        )
    yield (
        "Train: Start pretraining",
        "Start a pretraining run with the current config",
        partial(app.start_selected, "pretrain"),
    )
    for tool, title in PLAYGROUND_TOOLS:
        yield (
            f"Playground: {title}",
            f"Open the playground's {title.lower()} tool",
            partial(app.run_screen_action, "playground", f"show_tool('{tool}')"),
        )


class Bert2Commands(Provider):
    """All bert2-tui actions for the command palette."""

    async def discover(self) -> Hits:
        for title, help_text, callback in all_commands(self.app):
            yield DiscoveryHit(title, callback, help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, callback in all_commands(self.app):
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), callback, text=title, help=help_text)
