"""How the readers of untrusted files fare against N random mutations (issue 27's closing numbers).

    python benchmarks/fuzz_report.py [N]      (default 200 per suite)

Draws the same mutations as tests/test_fuzz_checkpoints.py (hypothesis strategies, a fixed seed) against a tiny
real checkpoint and small data files, and prints, per suite, how many loaded cleanly, how many were refused with a
Bert2Error (exit 2 in the CLI) and how many ended any other way (a bug: must be 0), with the first of those.
"""

from __future__ import annotations

import collections
import sys
import tempfile
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import test_fuzz_checkpoints as fz  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402


def run(n: int) -> dict[str, collections.Counter]:
    counts: dict[str, collections.Counter] = {"checkpoint": collections.Counter(), "data": collections.Counter()}
    firsts: list[str] = []
    quick = settings(
        max_examples=n, derandomize=True, deadline=None, database=None, suppress_health_check=list(HealthCheck)
    )

    with tempfile.TemporaryDirectory() as tmp:
        base = fz.make_checkpoint(Path(tmp) / "step-00000001")

        def one(suite: str, thunk, m) -> None:
            try:
                counts[suite][thunk(m)] += 1
            except Exception as exc:  # AssertionError (silent NaN, changed files) included: anything else is "other"
                counts[suite]["other"] += 1
                if len(firsts) < 5:
                    firsts.append(f"{suite} {m}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=-2)}")

        given(m=fz.mutations())(quick(lambda m: one("checkpoint", lambda x: fz.run_checkpoint_mutation(base, x), m)))()
        given(m=fz.data_mutations())(quick(lambda m: one("data", fz.run_data_mutation, m)))()
    print(f"{'suite':<12}{'tried':>7}{'clean':>7}{'exit 2':>8}{'other':>7}")
    for suite, c in counts.items():
        print(f"{suite:<12}{sum(c.values()):>7}{c['clean']:>7}{c['exit2']:>8}{c['other']:>7}")
    for f in firsts:
        print(f)
    return counts


if __name__ == "__main__":
    run(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
