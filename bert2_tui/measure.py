"""Measurements of the TUI for `bert2 bench tui` and the soak script (not tests: they print numbers).

    python -m bert2_tui.measure            # JSON: first-frame time, tokens/s headless vs inside the TUI
    python -m bert2_tui.measure --steps 200 --rounds 3

The throughput comparison runs the same short pretraining in this process, alternately headless through
`run_pretraining` and started with the `s` key inside the app (headless Textual driver), and compares the median
of the mean tokens/s the trainer reported after its first logging window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bert2.config import Config
from bert2.tasks.pretraining import run_pretraining
from bert2.training.events import event_from_dict

from .app import Bert2App


def first_frame(runs: int = 7) -> dict[str, Any]:
    """Median time from process start to the app's first frame (`bert2-tui --measure-startup`).

    One discarded run first, with bytecode caching on (as on a user's machine; some sandboxes and CI set
    PYTHONDONTWRITEBYTECODE, which would make every start compile bert2's sources again): the figure is a
    normal second start, not the very first one after installing.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["TERM"] = "xterm-256color"
    frames, walls, torch_loaded = [], [], []
    for i in range(runs + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-m", "bert2_tui", "--measure-startup"],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        if i == 0:
            continue
        walls.append(time.perf_counter() - t0)
        data = json.loads(proc.stdout.strip().splitlines()[-1])
        frames.append(data.get("since_process_start_s") or data["first_frame_s"])
        torch_loaded.append(data.get("torch_imported"))
    return {
        "first_frame_s_median": round(statistics.median(frames), 3),
        "first_frame_s_all": frames,
        "process_wall_s_median": round(statistics.median(walls), 3),
        "torch_imported_before_frame": any(torch_loaded),
    }


def _config(root: str, steps: int) -> Config:
    cfg = Config()
    cfg.paths.root = root
    cfg.pretrain.max_steps = steps
    cfg.pretrain.eval_every = cfg.pretrain.save_every = 0
    cfg.pretrain.log_every = 10
    return cfg


def _mean_tokens(events: list[Any]) -> float:
    rates = [e.tokens_per_s for e in events if type(e).__name__ == "StepEvent"][1:]  # skip the warm-up window
    return statistics.mean(rates) if rates else 0.0


def headless_tokens_per_s(steps: int) -> float:
    events: list[Any] = []
    with tempfile.TemporaryDirectory() as tmp:
        run_pretraining(_config(tmp, steps), [events.append])
    return _mean_tokens(events)


async def _tui_run(steps: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        app = Bert2App(_config(tmp, steps), load_history=False)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.press("2")
            await pilot.pause(0.2)
            await pilot.press("s")
            deadline = time.monotonic() + 1800
            while time.monotonic() < deadline:
                await pilot.pause(0.5)
                if app.job is not None and not app.job.active:
                    break
            await pilot.pause(0.3)
        log = Path(tmp) / "transformer" / "pretrain" / "metrics.jsonl"
        events = [event_from_dict(json.loads(line)) for line in log.read_text().splitlines()]
    return _mean_tokens(events)


def throughput(steps: int = 200, rounds: int = 3) -> dict[str, Any]:
    """Alternate headless and in-TUI runs `rounds` times and compare the medians.

    Why alternate: on a shared 2-core VM the same step's speed drifts by 10-20% over minutes (other tenants,
    clock changes), so one run of each, back to back, measures the drift as much as the TUI.
    """
    headless, inside = [], []
    for _ in range(rounds):
        headless.append(headless_tokens_per_s(steps))
        inside.append(asyncio.run(_tui_run(steps)))
    h, t = statistics.median(headless), statistics.median(inside)
    return {
        "steps": steps,
        "rounds": rounds,
        "headless_tokens_per_s": round(h),
        "tui_tokens_per_s": round(t),
        "headless_all": [round(x) for x in headless],
        "tui_all": [round(x) for x in inside],
        "ratio": round(t / h, 3) if h else None,
    }


def run(steps: int = 200, rounds: int = 3) -> dict[str, Any]:
    return {**first_frame(), **throughput(steps, rounds)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200, help="optimizer steps of each run")
    ap.add_argument("--rounds", type=int, default=3, help="headless + TUI pairs, alternated")
    args = ap.parse_args()
    print(json.dumps(run(args.steps, args.rounds)))


if __name__ == "__main__":
    main()
