"""ctrl+e on any screen: one way to write the page and say where it went."""

from __future__ import annotations

from pathlib import Path

from textual.screen import Screen


def save_page(screen: Screen, root: str, stem: str, text: str) -> None:
    """Write `text` under `root`/exports/ as a new file (never over one) and toast its path, or the error."""
    from bert2.html_export import EXPORT_DIR, write_new

    try:
        path = write_new(Path(root) / EXPORT_DIR, stem, text)
    except OSError as exc:
        screen.notify(f"could not write the page: {exc}", severity="error", title="Export")
        return
    screen.notify(f"saved {path}", title="Export")
