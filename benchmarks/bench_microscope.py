"""What the training microscope costs, in one process: scoring the heads (8 held-out sequences, once per
evaluation) against a training step and an evaluation of the same model, on the configured data.

    python benchmarks/bench_microscope.py CHECKPOINT [--preset tiny] [--threads 1]

Prints the three times and the microscope's share of training time at the configuration's eval_every. A ratio
measured in one process, so it holds on a busy machine where absolute tokens/s do not; the end-to-end comparison
is two runs with and without `--set pretrain.microscope=false` (docs/watching-bert-learn.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    import torch

    from bert2.config import Config, preset
    from bert2.data.pretraining import prepare_pretraining_data
    from bert2.inference import Predictor
    from bert2.microscope import HeadBatch, score_heads
    from bert2.tasks.pretraining import PretrainingTask

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", help="a pretraining checkpoint (its tokenizer reads the cached data)")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    cfg = preset(args.preset, Config())
    pred = Predictor.load(args.checkpoint)
    data = prepare_pretraining_data(cfg, pred.tokenizer)
    model = pred.model.train()
    task = PretrainingTask(cfg, pred.tokenizer, data.validation)
    heads = HeadBatch(data.validation, pred.tokenizer)
    bs = cfg.pretrain.batch_size

    def step() -> None:
        batch = task.collate([data.train[i] for i in range(bs)])
        loss, _ = task.loss(model, batch, task.count(batch))
        loss.backward()
        model.zero_grad()

    def microscope() -> None:
        score_heads(model, heads)

    def evaluate() -> None:
        model.eval()
        with torch.no_grad():
            task.evaluate(model)
        model.train()

    def timed(f, n: int) -> float:
        f()  # warm-up
        start = time.perf_counter()
        for _ in range(n):
            f()
        return (time.perf_counter() - start) / n

    ts, tm, te = timed(step, 10), timed(microscope, 10), timed(evaluate, 1)
    every = cfg.pretrain.eval_every
    print(f"batch {bs}: step {ts * 1000:.1f} ms, microscope {tm * 1000:.1f} ms, evaluation {te * 1000:.0f} ms")
    print(f"eval_every {every}: the microscope is {100 * tm / (every * ts + te):.3f}% of training time")


if __name__ == "__main__":
    main()
