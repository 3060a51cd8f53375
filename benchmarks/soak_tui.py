"""Soak: run bert2-tui with a pretraining job for a long time; record RSS, UI responsiveness and chart sizes.

    python benchmarks/soak_tui.py [--minutes 30] [--every 30] [--preset tiny] [--json out.json]

The app runs headless in this process (Textual's test driver), starts pretraining with `s` on the Train screen,
and every `--every` seconds records: resident memory (VmRSS), UI responsiveness and the number of points the charts
hold. Responsiveness is the event-loop lag: a probe thread hands the app a no-op callback four times a second
(`App.call_from_thread`, the same queue a key press or a trainer event goes through) and times how long the loop
takes to run it while charts redraw and events stream in; each sample reports the median, 95th percentile and
maximum of the lags since the previous sample. (Pilot.press is not used for this: it waits for the app to go idle,
which measures Textual's idle heuristics, not the user's wait.)
At the end it prints the table and the memory growth after warm-up (the first 20% of the run), which must stay
under 50 MB with bounded chart data.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class LagProbe(threading.Thread):
    """Times no-op callbacks through the app's event loop from another thread."""

    def __init__(self, app, period: float = 0.25):
        super().__init__(daemon=True, name="lag-probe")
        self.app, self.period = app, period
        self.lags: list[float] = []
        self.lock = threading.Lock()
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(self.period):
            t0 = time.perf_counter()
            try:
                self.app.call_from_thread(lambda: None)
            except RuntimeError:  # the app has shut down
                return
            with self.lock:
                self.lags.append(time.perf_counter() - t0)

    def take(self) -> list[float]:
        with self.lock:
            lags, self.lags = self.lags, []
        return lags


async def soak(minutes: float, every: float, preset: str) -> list[dict]:
    from bert2.config import preset as make_preset
    from bert2_tui.app import Bert2App

    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        cfg = make_preset(preset).with_overrides(
            [f"paths.root={tmp}", "pretrain.max_steps=1000000", "pretrain.eval_every=200", "pretrain.save_every=500"]
        )
        app = Bert2App(cfg, load_history=False)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("2")
            await pilot.press("s")
            probe = LagProbe(app)
            probe.start()
            start = time.monotonic()
            while time.monotonic() - start < minutes * 60:
                await asyncio.sleep(every)
                lags = sorted(probe.take()) or [float("nan")]
                st = app.run_state
                rows.append(
                    {
                        "t_min": round((time.monotonic() - start) / 60, 2),
                        "rss_mb": round(rss_mb(), 1),
                        "lag_p50_ms": round(statistics.median(lags) * 1e3, 1),
                        "lag_p95_ms": round(lags[int(0.95 * (len(lags) - 1))] * 1e3, 1),
                        "lag_max_ms": round(lags[-1] * 1e3, 1),
                        "step": st.step,
                        "points": sum(len(s) for s in st.series.values()) + len(st.lr),
                        "log_lines": len(st.log),
                        "tokens_per_s": round(st.tokens_per_s),
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
            probe.halt.set()
            app.stop_job()
            while app.job is not None and app.job.active:
                await pilot.pause(0.5)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--json", metavar="FILE", help="also write the samples here")
    args = ap.parse_args()
    rows = asyncio.run(soak(args.minutes, args.every, args.preset))
    warm = [r for r in rows if r["t_min"] >= args.minutes * 0.2] or rows
    growth = warm[-1]["rss_mb"] - warm[0]["rss_mb"]
    summary = {
        "samples": len(rows),
        "rss_start_mb": rows[0]["rss_mb"],
        "rss_end_mb": rows[-1]["rss_mb"],
        "rss_growth_after_warmup_mb": round(growth, 1),
        "lag_p50_ms": statistics.median(r["lag_p50_ms"] for r in rows),
        "worst_sample_lag_p95_ms": max(r["lag_p95_ms"] for r in rows),
        "lag_max_ms": max(r["lag_max_ms"] for r in rows),
        "max_chart_points": max(r["points"] for r in rows),
        "final_step": rows[-1]["step"],
    }
    print(json.dumps(summary, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps({"samples": rows, "summary": summary}, indent=2))


if __name__ == "__main__":
    main()
