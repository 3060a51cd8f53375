"""`bert2 bench data_prep` reports CPU seconds per MB per stage (the figure a shared machine's load does not
change), honours --workers, and its stage CPU times add up to what the processes really used."""

from __future__ import annotations

import pytest

from bert2.bench import bench_data_prep


@pytest.mark.slow
def test_data_prep_bench_reports_cpu_seconds_per_mb_for_one_worker():
    r = bench_data_prep(mb=0.4, workers=1)
    assert "error" not in r, r
    assert r["workers"] == 1 and r["text_mb"] > 0.3
    stages = r["cpu_s_per_mb_stages"]
    assert r["cpu_s_per_mb"] > 0 and stages["encode"] > 0 and stages["split sentences"] > 0
    # The worker's own stages are part of everything it ran (its start and imports too), never more.
    assert stages["split sentences"] + stages["encode"] <= stages["workers (everything they ran)"]
    assert r["cpu_s"] >= (stages["main process (read, write, wait, shuffle)"] - 1e-3) * r["text_mb"]
