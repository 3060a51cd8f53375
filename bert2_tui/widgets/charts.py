"""Line charts over plotext (textual-plotext): raw series with a smoothed line on top, downsampled to the width.

plotext's build costs ~25 ms at 200 points and ~1 s at 20k, so a chart never plots more points than it has
braille columns, and the owner redraws it at most a few times a second (see TrainScreen's dirty-flag timer).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from textual_plotext import PlotextPlot

Point = tuple[float, float]


def ema(values: Sequence[float], weight: float = 0.9) -> list[float]:
    """Debiased exponential moving average (TensorBoard's smoothing): early points are not pulled toward 0."""
    out: list[float] = []
    acc, norm = 0.0, 0.0
    for v in values:
        if not math.isfinite(v):
            out.append(out[-1] if out else v)
            continue
        acc = weight * acc + (1 - weight) * v
        norm = weight * norm + (1 - weight)
        out.append(acc / norm)
    return out


def smoothing_weight(n: int) -> float:
    """More smoothing for longer series: ~20 points of memory at 200 points, ~0.98 at 5000."""
    if n < 10:
        return 0.6
    return min(0.98, 1.0 - 1.0 / max(5.0, n / 10.0))


def downsample(points: Sequence[Point], buckets: int) -> list[Point]:
    """Mean of x and y per bucket, keeping the first and last points exactly (so the curve ends where it ends)."""
    n = len(points)
    if buckets <= 0 or n <= buckets:
        return list(points)
    out: list[Point] = []
    for b in range(buckets):
        lo, hi = b * n // buckets, (b + 1) * n // buckets
        if hi <= lo:
            continue
        chunk = points[lo:hi]
        # x stays an integer step (plotext then labels the axis with whole steps)
        out.append((round(sum(p[0] for p in chunk) / len(chunk)), sum(p[1] for p in chunk) / len(chunk)))
    out[0], out[-1] = points[0], points[-1]
    return out


def integer_ticks(lo: float, hi: float, max_ticks: int) -> list[int]:
    """Round step ticks (1, 2, 5 x 10^k) between lo and hi: axis labels read 0 100 200, never 107.5.

    The smallest round step that gives at most `max_ticks` ticks (and at least two where the range allows).
    """
    lo_i, hi_i = int(math.floor(lo)), int(math.ceil(hi))
    if hi_i <= lo_i:
        return [lo_i]
    best: list[int] = [lo_i, hi_i]
    for exp in range(0, 10):
        for m in (1, 2, 5):
            step = m * 10**exp
            first = -(-lo_i // step) * step
            ticks = list(range(first, hi_i + 1, step))
            if len(ticks) <= max_ticks:
                return ticks if len(ticks) >= 2 else best
            best = ticks
    return best


class SeriesChart(PlotextPlot):
    """A chart of named (step, value) series; `show_raw` draws each raw series dimmed under its smoothed line.

    An overlay (another run's curves, already smoothed: see bert2_tui.history) is drawn on the same axes in its
    own colours, each line labelled "<name> (<run>)" in the legend; its downsampling to the width is cached, so
    a redraw while the live run streams in costs the overlay nothing but the plot calls.
    """

    COLORS = ("cyan", "orange", "green", "magenta", "blue", "red")
    OVERLAY_COLORS = ("magenta+", "red+", "blue+", "green+", "orange+", "gray+")
    OVERLAY_MARKER_COLOR = "white"

    def __init__(
        self,
        title: str,
        *,
        smooth: bool = True,
        empty_text: str = "no data yet",
        id: str | None = None,
        classes: str | None = None,
    ):
        super().__init__(id=id, classes=classes)
        self.title = title
        self.smooth = smooth
        self.empty_text = empty_text
        self.points_plotted = 0
        """How many points the last redraw plotted in total (tests check charts received data)."""
        self.drawn: dict[str, list[Point]] = {}
        """The points the last redraw plotted, by legend label (unlabelled raw lines as "<name> (raw)")."""
        self.redraws = 0
        self._overlay_cache: dict[str, tuple[object, int, list[Point]]] = {}

    def on_mount(self) -> None:
        super().on_mount()
        self.set_series({})

    def legend_fits(self, *labels: str) -> bool:
        """Whether plotext has room for a legend with these labels (it leaves the whole legend out otherwise)."""
        return max(map(len, labels), default=0) + 4 <= max(10, (self.size.width or 40) - 10)

    def _overlay_points(self, label: str, pts: list[Point], width: int, used: dict) -> list[Point]:
        """`pts` downsampled to `width`, from the cache when the same list was drawn at that width last time."""
        cached = self._overlay_cache.get(label)
        if cached is None or cached[0] is not pts or cached[1] != width:
            cached = (pts, width, downsample(pts, width))
        used[label] = cached
        return cached[2]

    def set_series(
        self,
        series: dict[str, Iterable[Point]],
        markers: dict[str, Iterable[Point]] | None = None,
        overlay: dict[str, list[Point]] | None = None,
        overlay_markers: dict[str, list[Point]] | None = None,
        references: dict[str, float] | None = None,
        marks: dict[str, float] | None = None,
    ) -> None:
        """Replot from scratch: snapshot each series, downsample to the width, smooth, draw; then refresh once.

        `overlay` / `overlay_markers`: another run's lines and points, by legend label, drawn as given (no raw
        line, no smoothing: they come smoothed), in the overlay colours. Keep passing the same lists: their
        downsampling is cached by identity.

        `references`: labelled horizontal lines (the loss baselines: "below this line the model uses context"),
        drawn across the plotted steps; `marks`: labelled vertical lines at a step (where a baseline was crossed)."""
        plt = self.plt
        plt.clear_figure()
        plt.title(self.title)
        width = max(10, (self.size.width or 40) - 10) * 2  # braille: two dots per column, minus the y labels
        total = 0
        color_index = 0
        xs_seen: list[float] = []
        drawn: dict[str, list[Point]] = {}
        cache: dict[str, tuple[object, int, list[Point]]] = {}  # what this redraw used: the next one's cache
        for name, pts in series.items():
            pts = list(pts)  # snapshot the deque before plotting
            if not pts:
                continue
            xs_seen += [pts[0][0], pts[-1][0]]
            color = self.COLORS[color_index % len(self.COLORS)]
            color_index += 1
            if self.smooth and len(pts) > 2:
                w = smoothing_weight(len(pts))
                smoothed = list(zip((p[0] for p in pts), ema([p[1] for p in pts], w)))
                raw = downsample(pts, width)
                sm = downsample(smoothed, width)
                plt.plot([p[0] for p in raw], [p[1] for p in raw], color="gray", marker="braille")
                plt.plot([p[0] for p in sm], [p[1] for p in sm], color=color, marker="braille", label=name)
                total += len(raw) + len(sm)
                drawn[f"{name} (raw)"], drawn[name] = raw, sm
            else:
                pts = downsample(pts, width)
                plt.plot([p[0] for p in pts], [p[1] for p in pts], color=color, marker="braille", label=name)
                total += len(pts)
                drawn[name] = pts
        for i, (label, pts) in enumerate((overlay or {}).items()):
            if not pts:
                continue
            pts = self._overlay_points(label, pts, width, cache)
            xs_seen += [pts[0][0], pts[-1][0]]
            color = self.OVERLAY_COLORS[i % len(self.OVERLAY_COLORS)]
            plt.plot([p[0] for p in pts], [p[1] for p in pts], color=color, marker="braille", label=label)
            total += len(pts)
            drawn[label] = pts
        for name, pts in (markers or {}).items():
            pts = list(pts)
            if pts:
                plt.scatter([p[0] for p in pts], [p[1] for p in pts], color="yellow", marker="dot", label=name)
                total += len(pts)
                drawn[name] = pts
        for label, pts in (overlay_markers or {}).items():
            if pts:
                pts = self._overlay_points(label, pts, width, cache)
                xs_seen += [pts[0][0], pts[-1][0]]
                plt.scatter(
                    [p[0] for p in pts], [p[1] for p in pts], color=self.OVERLAY_MARKER_COLOR, marker="dot", label=label
                )
                total += len(pts)
                drawn[label] = pts
        self._overlay_cache = cache
        if xs_seen and total:
            x0, x1 = min(xs_seen), max(xs_seen)
            for label, y in (references or {}).items():
                plt.plot([x0, x1], [y, y], color="gray+", marker="braille", label=label)
                drawn[label] = [(x0, y), (x1, y)]
            ys = [y for pts in drawn.values() for _, y in pts if math.isfinite(y)]
            rows = max(4, (self.size.height or 12) - 4)  # plot rows, roughly: a label steps up one row per mark
            for k, (label, x) in enumerate((marks or {}).items()):
                plt.vertical_line(x, color="yellow")
                if ys:  # at the foot of the line: a falling loss is high at an early crossing, and the legend is on top
                    y = min(ys) + k * (max(ys) - min(ys)) / rows  # two marks close together must not overwrite
                    plt.text(label, x, y, color="yellow", alignment="left")
                drawn[label] = [(x, float("nan"))]
        if xs_seen:
            ticks = integer_ticks(min(xs_seen), max(xs_seen), max(2, min(6, (self.size.width or 40) // 9)))
            plt.xticks(ticks, [str(t) for t in ticks])
        if total == 0:
            plt.title(f"{self.title} — {self.empty_text}")
        self.points_plotted = total
        self.drawn = drawn
        self.redraws += 1
        self.refresh()
