"""Every screen and dialog at 80x24 (the smallest terminal bert2-tui promises) and 200x60 (a large one): nothing
important is cut. For each: the navigation bar and the key-bindings footer are on screen, the status lines are
whole, and the widgets a learner reads or types in have a size. Pilot-driven on a real tiny run's checkpoints.
"""

from __future__ import annotations

import threading

import pytest
from textual.widget import Widget
from textual.widgets import Footer, Input, TextArea

from bert2.config import Config
from bert2_tui.testing import make_app, tiny_config, widget_text

SIZES = [(80, 24), (200, 60)]

IMPORTANT = {
    "config": ["#config-toolbar", "#preset", "#config-filter", "#config-sections", "#config-form"],
    "train": [
        "#job-kind",
        "#charts",
        "#chart-loss",
        "#chart-parts",
        "#chart-lr",
        "#train-bottom",
        "#eval-pane",
        "#probe-pane",
    ],  # fmt: skip
    "checkpoints": ["#ckpt-tree", "#ckpt-info", "#ckpt-chart"],
    "playground": ["#pg-toolbar", "#pg-tabs", "#mask-input", "#mask-output"],
    "inside": ["#inside-checkpoint", "#inside-text", "#inside-scroll", "#inside-example"],
}
"""What each screen must show at every size (the rest may scroll)."""

STATUS = {
    "config": ["#config-status"],
    "train": ["#status-line", "#stats-line"],
    "playground": ["#pg-status"],
    "inside": ["#inside-status"],
}
"""Status lines: their whole text must be shown (wrapped where the widget is allowed more than one row)."""


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Config:
    from bert2.tasks.pretraining import run_pretraining

    root = tmp_path_factory.mktemp("layout")
    cfg = tiny_config(root, max_steps=12, eval_every=6, save_every=6, log_every=2)
    assert run_pretraining(cfg, stop_event=threading.Event()).reason == "completed"
    return cfg


async def wait_for(pilot, predicate, timeout: float = 60.0) -> bool:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return True
        await pilot.pause(0.05)
    return bool(predicate())


def on_screen(widget: Widget, size: tuple[int, int]) -> None:
    """Shown, with a size, and inside the terminal."""
    r = widget.region
    assert widget.display and r.width > 0 and r.height > 0, f"{widget!r} has no room at {size}: {r}"
    assert r.x >= 0 and r.y >= 0 and r.right <= size[0] and r.bottom <= size[1], f"{widget!r} is cut at {size}: {r}"


def whole(widget: Widget, size: tuple[int, int]) -> None:
    """The widget's text needs no more rows than it has at its width: nothing cut at the right or the bottom."""
    on_screen(widget, size)
    width = widget.content_region.width
    lines = [line.rstrip() for line in widget_text(widget).rstrip().splitlines()] or [""]
    need = widget.get_content_height(widget.size, widget.app.size, width)
    assert need <= widget.content_region.height, f"{widget!r} needs {need} rows at {size}: {lines}"
    if widget.content_region.height == 1:
        assert len(lines) == 1 and len(lines[0]) <= width, f"{widget!r} is cut at {size}: {lines[0]!r} > {width}"


def footer_keys(app, size: tuple[int, int]) -> list:
    """The footer's key bindings shown whole (the footer recomposes after a screen or focus change)."""
    return [
        k
        for k in app.screen.query(Footer).first().query("FooterKey")
        if k.region.width > 0 and k.region.right <= size[0]
    ]


def frame_ok(app, size: tuple[int, int]) -> None:
    """The navigation bar on top and the footer with key bindings at the bottom, both whole."""
    screen = app.screen
    on_screen(screen.query_one("#nav"), size)
    assert screen.query_one("#nav").region.y == 0
    footer = screen.query_one(Footer)
    on_screen(footer, size)
    assert footer.region.bottom == size[1] and footer.region.height == 1
    keys = [k for k in footer.query("FooterKey") if k.region.width > 0 and k.region.right <= size[0]]
    assert len(keys) >= 4, f"the footer shows {len(keys)} whole key(s) at {size}"  # the rest scroll off


def check_screen(app, mode: str, size: tuple[int, int]) -> None:
    frame_ok(app, size)
    for sel in IMPORTANT[mode]:
        on_screen(app.screen.query_one(sel), size)
    for sel in STATUS.get(mode, []):
        whole(app.screen.query_one(sel), size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_every_screen_fits(trained, size):
    app = make_app(trained)
    async with app.run_test(size=size) as pilot:
        for key, mode in zip("12345", ("config", "train", "checkpoints", "playground", "inside")):
            if isinstance(app.focused, (Input, TextArea)):
                await pilot.press("escape")  # out of the field first, as a learner would (else the digit is typed)
            await pilot.press(key)
            assert await wait_for(pilot, lambda m=mode: app.current_mode == m)
            if mode == "checkpoints":
                assert await wait_for(pilot, lambda: app.screen.selected is not None)
            if mode == "playground":
                # the filled-in sentence with its predictions (which words a 12-step model predicts is not the point)
                out = app.screen.query_one("#mask-output")
                assert await wait_for(pilot, lambda o=out: "capital" in widget_text(o).lower())
            if mode == "inside":
                assert await wait_for(pilot, lambda: app.screen.result is not None)
            if mode == "train":
                assert await wait_for(pilot, lambda: "last run" in widget_text(app.screen.query_one("#status-line")))
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert await wait_for(pilot, lambda: len(footer_keys(app, size)) >= 4), f"{mode}: footer at {size}"
            check_screen(app, mode, size)
            if mode == "config":  # each field's explanation has room to be read
                help_ = app.screen.query_one(".field-help")
                on_screen(help_, size)
                assert help_.region.width >= 40, f"field help is {help_.region.width} columns wide at {size}"
            if mode == "train":
                await pilot.press("m")
                assert await wait_for(pilot, lambda: app.screen.query_one("#microscope-pane").region.height > 0)
                on_screen(app.screen.query_one("#microscope-pane"), size)
                frame_ok(app, size)
                await pilot.press("m")
            if mode == "checkpoints":
                await pilot.press("right")
                assert await wait_for(
                    pilot, lambda: "heads at step" in widget_text(app.screen.query_one("#ckpt-frame"))
                )
                await pilot.pause()
                for sel in ("#ckpt-frame", "#ckpt-sentence", "#ckpt-attn", "#ckpt-chart", "#ckpt-tree"):
                    on_screen(app.screen.query_one(sel), size)
                frame_ok(app, size)


def dialog_ok(app, size: tuple[int, int], *inner: str) -> None:
    """A dialog is wholly on screen, and so are its parts (buttons, list, hint)."""
    screen = app.screen
    box = screen.query_one("#dialog, #choice-dialog, #help-dialog")
    on_screen(box, size)
    for sel in inner:
        for w in screen.query(sel):
            on_screen(w, size)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
async def test_every_dialog_fits(trained, size):
    app = make_app(trained)
    async with app.run_test(size=size) as pilot:
        await pilot.press("question_mark")  # help
        assert await wait_for(pilot, lambda: app.screen.query("#help-dialog"))
        dialog_ok(app, size, "#help-title", "#help-body", ".hint")
        await pilot.press("escape")
        assert await wait_for(pilot, lambda: not app.screen.query("#help-dialog"))
        await pilot.press("1")  # the app opens on Train when a run is there
        # every section mounted (they mount one per frame): ctrl+s validates the whole form
        assert await wait_for(
            pilot, lambda: app.screen.id == "config-screen" and app.focused is not None and app.screen.fully_mounted
        )
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("ctrl+s")  # config: save as TOML (a prompt)
        assert await wait_for(pilot, lambda: app.screen.query("#prompt-input"))
        dialog_ok(app, size, "#question", "#prompt-input", ".hint")
        await pilot.press("escape")
        await pilot.press("2")
        assert await wait_for(pilot, lambda: app.screen.id == "train-screen")
        await pilot.pause()
        await pilot.press("o")  # train: the overlay picker (a choice)
        assert await wait_for(pilot, lambda: app.screen.query("#choice-list"))
        dialog_ok(app, size, "#question", "#choice-list", ".hint")
        await pilot.press("escape")
        await pilot.press("s")  # train: start over existing runs asks (a choice)
        assert await wait_for(pilot, lambda: app.screen.query("#choice-list"))
        dialog_ok(app, size, "#question", "#choice-list", ".hint")
        await pilot.press("escape")
        await pilot.press("3")
        assert await wait_for(pilot, lambda: app.current_mode == "checkpoints" and app.screen.selected is not None)
        await pilot.press("d")  # checkpoints: delete asks (a confirmation)
        assert await wait_for(pilot, lambda: app.screen.query("#buttons"))
        dialog_ok(app, size, "#question", "#buttons Button")
        await pilot.press("n")
        assert await wait_for(pilot, lambda: not app.screen.query("#buttons"))
