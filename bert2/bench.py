"""Benchmarks against transformers, run in one process with the same data, config and threads.

Each benchmark returns a JSON-able dict; comparisons carry `ratio` = bert2 / peer (higher is better for
throughput, lower for latency — the key says which). `bert2 bench` prints them; `benchmarks/*.py` are thin
scripts around the same functions. Nothing here is a test: these print measured numbers.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import transformers

from . import checkpoint as ckpt
from .allocator import tune_allocator
from .checkpoint import default_checkpoint
from .checkpoint.hf import hf_config_dict, to_hf_state_dict
from .config import Config, ModelConfig, TrainConfig, preset
from .data.collator import MLMCollator
from .data.corpus import imdb_reviews, load_wiki_articles, split_sentences
from .data.tokenizer import save_tokenizer, train_wordpiece
from .inference import Predictor
from .memory import estimate
from .model import BertForPreTraining
from .registry import finetune_tasks
from .registry import get as get_task
from .tasks.finetuning import SCRATCH, run_finetuning
from .tasks.pretraining import PretrainingTask, build_pretraining_trainer
from .training.events import EvalEvent
from .training.schedule import Schedule
from .training.trainer import make_adamw, param_groups

# The seed's BERT-Tiny, architecture for architecture transformers' BERT (learned absolute positions only).
SEED_CONFIG = dict(
    vocab_size=30522,
    hidden_size=128,
    num_hidden_layers=2,
    num_attention_heads=8,
    intermediate_size=512,
    position_embedding_type="absolute",
)


def _median_time(fn: Callable[[], Any], repeats: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def matmul_peak(dtype: torch.dtype = torch.float32, n: int = 1024, seconds: float = 2.0) -> float:
    """Best measured FLOP/s of an n x n matmul in this process (the denominator of MFU)."""
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    best, t_end = 0.0, time.perf_counter() + seconds
    while time.perf_counter() < t_end:
        t0 = time.perf_counter()
        for _ in range(4):
            a @ b
        best = max(best, 4 * 2 * n**3 / (time.perf_counter() - t0))
    return best


def train_flops(cfg: Any, batch: int, seq: int, masked: int) -> float:
    """Model FLOPs of one training step (forward + backward = 3 x forward) with the masked-only MLM head."""
    H, I, L, V = cfg.hidden_size, cfg.intermediate_size, cfg.num_hidden_layers, cfg.vocab_size
    tokens = batch * seq
    up = 2 * I if cfg.feed_forward == "glu" else I  # a GLU's first projection makes gate and value
    per_layer = 2 * (4 * H * H + H * up + H * I) * tokens + 2 * 2 * seq * H * tokens  # projections + attention
    head = 2 * (H * H + H * V) * masked + 2 * H * H * batch  # MLM transform + vocabulary; pooler
    return 3.0 * (L * per_layer + head)


def _synthetic_batch(vocab: int, batch: int, seq: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (batch, seq), generator=g)  # (B, T)
    labels = torch.full_like(ids, -100)
    chosen = torch.rand(batch, seq, generator=g) < 0.15
    labels[chosen] = ids[chosen]
    return {
        "input_ids": ids,
        "token_type_ids": (torch.arange(seq) >= seq // 2).long().expand(batch, seq).clone(),
        "attention_mask": torch.ones_like(ids),
        "labels": labels,
        "next_sentence_label": torch.randint(0, 2, (batch,), generator=g),
    }


def _hf_model(cfg: Any, attn: str = "sdpa"):
    # transformers' BERT has neither pre-LN nor ALiBi: its model of a bert2 config is the standard BERT of that size.
    conf = {
        k: v
        for k, v in hf_config_dict(cfg).items()
        if k not in ("architectures", "norm_placement", "position_embedding_type", "feed_forward")
    }
    return transformers.BertForPreTraining(transformers.BertConfig(**conf, attn_implementation=attn))


def _step_fn(model: torch.nn.Module, batch: dict[str, torch.Tensor], hf: bool, precision: str = "fp32"):
    opt = make_adamw(param_groups(model, 0.01), TrainConfig(learning_rate=1e-4), torch.device("cpu"))
    model.train()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()
    forward = model if hf else model.loss  # bert2's training loss is its own call (masked rows only)

    def step() -> None:
        with autocast:
            loss = forward(**batch).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def _step_row(
    model: torch.nn.Module, data: dict[str, torch.Tensor], hf: bool, precision: str, repeats: int, warmup: int
):
    times = _median_time(_step_fn(model, data, hf, precision), repeats, warmup)
    med = statistics.median(times)
    return {"ms_per_step": round(med * 1e3, 1), "tokens_per_s": round(data["input_ids"].numel() / med)}


def _op_family(name: str) -> str:
    """Which part of a step an aten op belongs to, for the profile's summary."""
    name = name.lower()
    if any(k in name for k in ("addmm", "::mm", "bmm", "matmul", "linear", "baddbmm")):
        return "matmul"
    if "attention" in name:
        return "attention"
    if "softmax" in name:
        return "softmax (MLM loss)"
    if "layer_norm" in name or "gelu" in name or "dropout" in name:
        return "layernorm/gelu/dropout"
    if "adam" in name or "optimizer" in name or "_foreach" in name or "lerp" in name or "addcdiv" in name:
        return "optimizer"
    if any(k in name for k in ("copy_", "to_copy", "clone", "contiguous", "cat", "index", "embedding")):
        return "copies/indexing"
    if "sum" in name:
        return "reductions (bias grads, loss)"
    return "other elementwise"


def profile_step(
    cfg: Any, batch: int, seq: int, precision: str = "fp32", steps: int = 5, top: int = 15
) -> dict[str, Any]:
    """torch.profiler's per-op table of bert2's training step: where the milliseconds go (self CPU time), each
    op's share and a summary by family (matmul, attention, layer norm/GELU, optimizer, copies, reductions), so
    what is left outside the matmuls has a name and a size."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    data = _synthetic_batch(cfg.vocab_size, batch, seq)
    step = _step_fn(BertForPreTraining(cfg), data, False, precision)
    for _ in range(3):
        step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(steps):
            step()
    rows = [e for e in prof.key_averages() if e.key.startswith("aten::") or "Optimizer" in e.key]
    total = sum(e.self_cpu_time_total for e in rows) or 1.0
    rows.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
    families: dict[str, float] = {}
    for e in rows:
        fam = _op_family(e.key)
        families[fam] = families.get(fam, 0.0) + e.self_cpu_time_total
    per = 1e3 * steps  # profiler times are microseconds; per step in milliseconds
    return {
        "precision": precision,
        "ms_per_step_profiled": round(total / per, 1),
        "families": {
            k: {"ms": round(v / per, 2), "share": round(v / total, 3)}
            for k, v in sorted(families.items(), key=lambda kv: -kv[1])
        },
        "ops": [
            {
                "op": e.key,
                "ms": round(e.self_cpu_time_total / per, 2),
                "share": round(e.self_cpu_time_total / total, 3),
                "calls": e.count // steps,
            }
            for e in rows[:top]
        ],
    }


def bench_train_throughput(
    repeats: int = 7,
    warmup: int = 3,
    batch: int = 32,
    seq: int = 128,
    presets: tuple[str, ...] = ("tiny", "mini", "small"),
    profile: bool = False,
    hf: bool = True,
) -> dict[str, Any]:
    """ms/step, tokens/s and MFU of bert2's training step in fp32 and bf16 at the seed's BERT-Tiny and at each
    preset, beside transformers' BertForPreTraining (sdpa, fp32) on the same batch, in one process.

    MFU = useful model FLOP/s (forward + backward of the masked-row MLM model) / the best n=1024 matmul FLOP/s
    of the same precision, measured right before that row: what fraction of what the machine can multiply the step
    actually spends on the model's arithmetic. `profile`: a per-op table of each fp32 and bf16 step too.
    """
    tune_allocator()  # process-wide: transformers' model gets the same allocator as bert2's
    peaks = {"fp32": matmul_peak(), "bf16": matmul_peak(torch.bfloat16)}
    out: dict[str, Any] = {
        "threads": torch.get_num_threads(),
        "batch": batch,
        "seq": seq,
        "matmul_peak_gflops_fp32": round(peaks["fp32"] / 1e9, 1),
        "matmul_peak_gflops_bf16": round(peaks["bf16"] / 1e9, 1),
    }
    configs = {"seed_tiny_30522": ModelConfig(**SEED_CONFIG)}
    for name in presets:
        configs[f"preset_{name}"] = preset(name).model
    for name, cfg in configs.items():
        torch.manual_seed(0)
        data = _synthetic_batch(cfg.vocab_size, batch, seq)
        masked = int((data["labels"] != -100).sum())
        flops = train_flops(cfg, batch, seq, masked)
        row: dict[str, Any] = {"useful_gflop_per_step": round(flops / 1e9, 2)}
        for precision in ("fp32", "bf16"):
            torch.manual_seed(0)
            # The peak again right before the row: on a VM it drifts by 10-15% over minutes, and MFU against a
            # peak measured minutes earlier would move with the drift, not with the step.
            peak = matmul_peak(torch.float32 if precision == "fp32" else torch.bfloat16, seconds=1.0)
            r = _step_row(BertForPreTraining(cfg), data, False, precision, repeats, warmup)
            r["matmul_peak_gflops"] = round(peak / 1e9, 1)
            r["mfu"] = round(flops / (r["ms_per_step"] / 1e3) / peak, 3)
            row[f"bert2_{precision}"] = r
        row["bf16_speedup"] = round(row["bert2_fp32"]["ms_per_step"] / row["bert2_bf16"]["ms_per_step"], 2)
        if hf:
            # transformers' BERT with its own default dropout, as a user of it gets it
            hf_cfg = ModelConfig(**{**cfg.__dict__, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1})
            row["transformers_fp32"] = _step_row(_hf_model(hf_cfg), data, True, "fp32", repeats, warmup)
            row["ratio_fp32"] = round(row["bert2_fp32"]["tokens_per_s"] / row["transformers_fp32"]["tokens_per_s"], 2)
        if profile:
            row["profile"] = {p: profile_step(cfg, batch, seq, p) for p in ("fp32", "bf16")}
        out[name] = row
    return out


def _export_for_hf(predictor: Any, directory: Path) -> None:
    """Write the predictor's weights as a transformers BertForPreTraining directory (parity mapping)."""
    model = _hf_model(predictor.model.config, "sdpa")
    missing, unexpected = model.load_state_dict(to_hf_state_dict(predictor.model.state_dict()), strict=False)
    assert not [k for k in missing if "position_ids" not in k], missing
    model.save_pretrained(str(directory))
    predictor.tokenizer.save_pretrained(str(directory))


def bench_inference_latency(checkpoint: str | None = None, repeats: int = 200, batch: int = 64) -> dict[str, Any]:
    """fill-mask p50/p95 for one sentence and sentences/s for a batch, bert2 vs transformers' pipeline."""
    path = checkpoint or default_checkpoint(Config().paths.root, "pretrain")
    predictor = Predictor.load(path)
    text = "The capital of France is [MASK]."
    texts = [f"The capital of France is [MASK]. Sentence number {i} is here." for i in range(batch)]
    with tempfile.TemporaryDirectory() as tmp:
        _export_for_hf(predictor, Path(tmp))
        pipe = transformers.pipeline("fill-mask", model=tmp, tokenizer=tmp, device="cpu", top_k=5)
        ours = _median_time(lambda: predictor.fill_mask(text, 5), repeats, 10)
        theirs = _median_time(lambda: pipe(text), repeats, 10)
        ours_batch = _median_time(lambda: predictor.fill_mask_batch(texts, 5), 5, 1)
        theirs_batch = _median_time(lambda: pipe(texts, batch_size=batch), 5, 1)
        same = [p["token"] for p in predictor.fill_mask(text, 5)[0]] == [
            p["token_str"].replace(" ", "") for p in pipe(text)
        ]
    # An ALiBi checkpoint has no transformers equivalent: the pipeline then runs the same tensors without the
    # distance bias (same matmuls, so latency still compares; top-5 agreement is not expected).
    positions = predictor.model.config.position_embedding_type

    def pct(ts: list[float], q: float) -> float:
        return round(sorted(ts)[min(len(ts) - 1, int(q * len(ts)))] * 1e3, 2)

    out = {
        "checkpoint": str(predictor.path),
        "position_embedding_type": positions,
        "same_top5": same,
        "bert2": {
            "p50_ms": pct(ours, 0.5),
            "p95_ms": pct(ours, 0.95),
            "batch_sentences_per_s": round(batch / statistics.median(ours_batch), 1),
        },
        "transformers_pipeline": {
            "p50_ms": pct(theirs, 0.5),
            "p95_ms": pct(theirs, 0.95),
            "batch_sentences_per_s": round(batch / statistics.median(theirs_batch), 1),
        },
    }
    out["ratio"] = round(out["bert2"]["p50_ms"] / out["transformers_pipeline"]["p50_ms"], 3)  # latency: lower
    out["batch_ratio"] = round(
        out["bert2"]["batch_sentences_per_s"] / out["transformers_pipeline"]["batch_sentences_per_s"], 2
    )
    return out


def bench_time_to_quality(
    minutes: float = 5.0, eval_every_s: float = 60.0, overrides: list[str] | None = None
) -> dict[str, Any]:
    """Held-out masked-token accuracy and MLM loss of bert2's default pretraining vs transformers'
    BertForPreTraining trained with the same tokenizer, data, batch size and LR schedule, same wall-clock budget."""
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config().with_overrides(
            [
                f"paths.root={tmp}",
                f"pretrain.minutes={minutes}",
                "pretrain.eval_every=0",
                "pretrain.save_every=0",
                "pretrain.eval_batches=0",
                *(overrides or []),
            ]
        )
        # --- bert2: the real trainer with its default recipe, evaluated every eval_every_s of wall time
        curve_ours: list[dict[str, float]] = []
        trainer = build_pretraining_trainer(cfg, [])
        task: PretrainingTask = trainer.task  # type: ignore[assignment]
        data_train, tokenizer = trainer.train_data, task.tokenizer
        next_eval = [eval_every_s]
        orig_emit = trainer.emit

        def emit(event: Any) -> None:
            orig_emit(event)
            if trainer.elapsed >= next_eval[0] and not isinstance(event, EvalEvent):
                next_eval[0] += eval_every_s
                t_pause = time.perf_counter()
                m = _eval(trainer.raw_model, task)
                curve_ours.append({"minutes": round(trainer.elapsed / 60, 2), "step": trainer.step, **m})
                trainer.paused_s += time.perf_counter() - t_pause  # evaluation is not training time

        trainer.emit = emit  # type: ignore[method-assign]
        trainer.s.log_every = 5
        done = trainer.fit()
        if not curve_ours or curve_ours[-1]["step"] != done.step:  # the last timed eval may already be the end
            curve_ours.append(
                {"minutes": round(trainer.elapsed / 60, 2), "step": done.step, **_eval(trainer.raw_model, task)}
            )

        # --- transformers: same tokenizer/data/batches/schedule, its standard model (dropout 0.1, full head)

        mc = ModelConfig(
            **{**trainer.raw_model.config.__dict__, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1}
        )
        torch.manual_seed(cfg.pretrain.seed)
        hf = _hf_model(mc)
        p = cfg.pretrain
        opt = torch.optim.AdamW(
            param_groups(hf, p.weight_decay), lr=p.learning_rate, betas=(p.adam_beta1, p.adam_beta2), eps=p.adam_epsilon
        )
        sched = Schedule(p.learning_rate, p.warmup_steps, p.max_steps, p.scheduler, minutes * 60)

        collator = MLMCollator(
            tokenizer,
            cfg.data.mlm_probability,
            cfg.data.mask_replace_prob,
            cfg.data.random_replace_prob,
            seed=cfg.data.seed,
        )
        g = torch.Generator().manual_seed(p.seed)
        order = torch.randperm(len(data_train), generator=g).tolist()
        curve_hf: list[dict[str, float]] = []
        step, pos, elapsed, start = 0, 0, 0.0, time.perf_counter()
        eval_time = 0.0
        next_hf = eval_every_s
        hf.train()
        while elapsed < minutes * 60:
            if pos + p.batch_size > len(order):
                order = torch.randperm(len(data_train), generator=g).tolist()
                pos = 0
            batch = collator([data_train[i] for i in order[pos : pos + p.batch_size]])
            pos += p.batch_size
            loss = hf(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(hf.parameters(), p.max_grad_norm)
            for group in opt.param_groups:
                group["lr"] = sched.lr(step, elapsed)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            elapsed = time.perf_counter() - start - eval_time
            if elapsed >= next_hf:
                next_hf += eval_every_s
                t0 = time.perf_counter()
                curve_hf.append({"minutes": round(elapsed / 60, 2), "step": step, **_eval(hf, task, hf=True)})
                eval_time += time.perf_counter() - t0
        if not curve_hf or curve_hf[-1]["step"] != step:
            curve_hf.append({"minutes": round(elapsed / 60, 2), "step": step, **_eval(hf, task, hf=True)})

        probe = task.probes(trainer.raw_model)
    reach = next((c["minutes"] for c in curve_ours if c["mlm_accuracy"] >= curve_hf[-1]["mlm_accuracy"]), None)
    return {
        "minutes_each": minutes,
        "bert2": curve_ours,
        "transformers": curve_hf,
        "ratio": round(curve_ours[-1]["mlm_accuracy"] / max(curve_hf[-1]["mlm_accuracy"], 1e-9), 2),
        "bert2_minutes_to_reach_transformers_final_accuracy": reach,
        "probe": probe,
    }


@torch.no_grad()
def _eval(model: torch.nn.Module, task: Any, hf: bool = False) -> dict[str, float]:
    """Masked-token accuracy and MLM loss on the whole held-out split with fixed masks (both models alike)."""
    collator = MLMCollator(*task._eval_args, seed=1234)
    was = model.training
    model.eval()
    correct = count = loss_sum = 0.0
    for start in range(0, len(task.validation), 64):
        batch = collator([task.validation[i] for i in range(start, min(start + 64, len(task.validation)))])
        labels = batch["labels"]
        sel = labels != -100
        logits = model(
            input_ids=batch["input_ids"], token_type_ids=batch["token_type_ids"], attention_mask=batch["attention_mask"]
        ).prediction_logits[sel]  # (N, V): both models alike
        target = labels[sel]
        loss_sum += float(torch.nn.functional.cross_entropy(logits.float(), target, reduction="sum"))
        correct += float((logits.argmax(-1) == target).sum())
        count += target.numel()
    model.train(was)
    return {"mlm_accuracy": round(correct / count, 4), "mlm_loss": round(loss_sum / count, 4)}


_PEAK_RSS_CHILD = """
import atexit, sys
from pathlib import Path
from bert2.memory import peak_rss_mb  # read at exit by the child itself (see bench_quick_rss)

atexit.register(lambda: Path(sys.argv[1]).write_text(str(peak_rss_mb())))
from bert2.cli import main
sys.exit(main(sys.argv[2:]))
"""


def bench_quick_rss(extra: list[str] | None = None) -> dict[str, Any]:
    """Peak resident memory of a real `bert2 quick` in a child process, read by the child itself at exit.

    Not ru_maxrss: Linux folds the parent's resident size at fork/exec into the child's maximum, so after
    `train_throughput` (which leaves this process at ~3 GB) a 0.6 GB child reported 3 GB.
    """
    with tempfile.TemporaryDirectory() as tmp:
        mb, code, wall = _child_peak_rss(["quick", "--quiet", "--set", f"paths.root={tmp}", *(extra or [])], tmp)
    return {"peak_rss_mb": mb, "wall_s": wall, "exit_code": code, "args": extra or []}


def _child_peak_rss(argv: list[str], tmp: str) -> tuple[float, int, float]:
    """(peak RSS in MB, exit code, wall seconds) of `bert2 ARGV` run in a child process."""
    out = Path(tmp) / "hwm"
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK_RSS_CHILD, str(out), *argv], capture_output=True, text=True, cwd=os.getcwd()
    )
    peak_mb = float(out.read_text()) if out.exists() else 0.0
    return round(peak_mb, 1), proc.returncode, round(time.perf_counter() - t0, 1)


def bench_memory(presets: tuple[str, ...] = ("tiny", "mini", "small"), steps: int = 30) -> dict[str, Any]:
    """bert2.memory's estimate against the measured peak RSS of a short real pretraining run per preset.

    The run is long enough for the optimizer state and the allocator's cached buffers to reach their steady size
    (the peak of a longer run is the same within a few MB); evaluation is off, so the peak is training's.
    """
    rows = {}
    for name in presets:
        cfg = preset(name)
        est = estimate(cfg, available=None)
        with tempfile.TemporaryDirectory() as tmp:
            mb, code, wall = _child_peak_rss(
                [
                    "pretrain",
                    "--quiet",
                    "--preset",
                    name,
                    "--max-steps",
                    str(steps),
                    "--set",
                    f"paths.root={json.dumps(tmp)}",
                    "--set",
                    "pretrain.eval_every=0",
                    "--set",
                    "pretrain.save_every=0",
                    "--set",
                    "pretrain.warmup_steps=3",
                ],
                tmp,
            )
        rows[name] = {
            "parameters": est.parameters,
            "estimate_mb": round(est.total_bytes / 2**20, 1),
            "measured_peak_rss_mb": mb,
            "estimate_over_measured": round(est.total_bytes / 2**20 / mb, 2) if mb else None,
            "exit_code": code,
            "wall_s": wall,
        }
    return rows


_DATA_PREP_CHILD = """
import json, resource, sys, time
from bert2.config import load_config
from bert2.memory import peak_rss_mb
import bert2.data.pretraining as P
if sys.argv[3] != "auto":
    P.worker_count = lambda corpus: int(sys.argv[3])
def cpu():
    s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return s.ru_utime + s.ru_stime, c.ru_utime + c.ru_stime
c0 = cpu()
t0 = time.perf_counter()
data = P.prepare_pretraining_data(load_config(sys.argv[2]))
wall = time.perf_counter() - t0
c1 = cpu()  # the pool is joined by now, so RUSAGE_CHILDREN holds the workers' whole CPU time
main_cpu, workers_cpu = c1[0] - c0[0], c1[1] - c0[1]
t0 = time.perf_counter()
again = P.prepare_pretraining_data(load_config(sys.argv[2]))
hit = time.perf_counter() - t0
json.dump({"info": data.info, "wall_s": wall, "cache_hit_s": hit, "hit": again.info["cache_hit"],
           "main_peak_rss_mb": peak_rss_mb(), "main_cpu_s": main_cpu, "workers_cpu_s": workers_cpu},
          open(sys.argv[1], "w"))
"""


def write_generated_corpus(path: Path, mb: float, seed: int = 0) -> int:
    """A JSON-lines corpus of about `mb` MB made of the offline texts (wiki summaries and IMDB reviews), each
    document's sentences shuffled so that the text does not simply repeat; returns its size in bytes."""
    texts = [a["extract"] for a in load_wiki_articles()] + [r["text"] for r in imdb_reviews()]
    sentences = [split_sentences(t) for t in texts]
    rng = random.Random(seed)
    target = int(mb * 1e6)
    size = 0
    with open(path, "w", encoding="utf-8") as fh:
        while size < target:
            lines = []
            for _ in range(1000):
                doc = list(rng.choice(sentences))
                rng.shuffle(doc)
                lines.append(json.dumps({"text": " ".join(doc)}, ensure_ascii=False) + "\n")
            block = "".join(lines)
            fh.write(block)
            size += len(block.encode("utf-8"))
    return size


def bench_data_prep(mb: float = 25.0, corpus: str | None = None, workers: int | None = None) -> dict[str, Any]:
    """Pretraining data preparation of a generated `mb` MB corpus (or `corpus`), in a child process: MB/s end to
    end and per stage, CPU seconds per MB (total and per stage: unlike MB/s they do not depend on what else the
    machine runs, so they are the figure to compare on a shared machine and to model more cores with), peak
    resident memory of the main process and of each worker, and a second run's cache hit. `workers` None: one
    per core (at most 8), as preparation chooses; 0: everything in the main process.

    The tokenizer is trained beforehand on wiki-offline (preparation trains on at most a 64 MB sample anyway), so
    the figures are those of reading, sentence splitting, encoding, writing and pair building.
    """
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if corpus is None:
            path = root / "corpus.jsonl"
            t0 = time.perf_counter()
            write_generated_corpus(path, mb)
            generate_s = time.perf_counter() - t0
            corpus = str(path)
        else:
            generate_s = 0.0
        cfg = Config()
        tok = train_wordpiece((a["extract"] for a in load_wiki_articles()), cfg.model.vocab_size)
        save_tokenizer(tok, root / "tokenizer")
        cfg.data.corpus, cfg.data.tokenizer, cfg.data.cache_dir = corpus, str(root / "tokenizer"), str(root / "cache")
        cfg.save(root / "bert2.toml")
        out = root / "result.json"
        proc = subprocess.run(
            [
                sys.executable,
                "-c",
                _DATA_PREP_CHILD,
                str(out),
                str(root / "bert2.toml"),
                str(workers) if workers is not None else "auto",
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            return {"error": proc.stderr.strip().splitlines()[-1:] or ["failed"], "exit_code": proc.returncode}
        r = json.loads(out.read_text())
        cache_mb = sum(f.stat().st_size for f in (root / "cache").rglob("*") if f.is_file()) / 1e6
    info = r["info"]
    text_mb = info["corpus_bytes"] / 1e6
    stages = info["stage_seconds"]
    cpu_stages = info.get("stage_cpu_seconds", {})
    workers = max(1, info["workers"])
    total_cpu = r["main_cpu_s"] + r["workers_cpu_s"]

    def per_mb(seconds: float | None) -> float | None:
        return round(seconds / text_mb, 4) if seconds is not None and text_mb else None

    def rate(seconds: float, parallel: int = 1) -> float | None:
        return round(text_mb / (seconds / parallel), 1) if seconds else None

    return {
        "text_mb": round(text_mb, 1),
        "documents": info["documents"],
        "tokens": info["corpus_tokens"],
        "train_examples": info["train_examples"],
        "workers": info["workers"],
        "wall_s": round(r["wall_s"], 1),
        "mb_per_s": round(text_mb / r["wall_s"], 1),
        "cpu_s": round(total_cpu, 1),
        "cpu_s_per_mb": per_mb(total_cpu),
        "cpu_s_per_mb_stages": {
            "main process (read, write, wait, shuffle)": per_mb(r["main_cpu_s"]),
            "workers (everything they ran)": per_mb(r["workers_cpu_s"]) if info["workers"] else None,
            "split sentences": per_mb(cpu_stages.get("split")),
            "encode": per_mb(cpu_stages.get("encode")),
            "read": per_mb(cpu_stages.get("read")),
            "write": per_mb(cpu_stages.get("write")),
            "pairs (workers)": per_mb(cpu_stages.get("pairs_workers")) if info["workers"] else None,
        },
        "stages_mb_per_s": {
            "read (main process)": rate(stages.get("read", 0)),
            "split sentences (per worker)": rate(stages.get("split", 0)),
            "encode (per worker)": rate(stages.get("encode", 0)),
            f"split + encode ({workers} workers together)": rate(
                stages.get("split", 0) + stages.get("encode", 0), workers
            ),
            "write (main process)": rate(stages.get("write", 0)),
            "pairs + shuffle (main process)": rate(info["build_seconds"].get("build", 0)),
        },
        "peak_rss_mb": {
            "main": round(r["main_peak_rss_mb"]),
            "each_worker": info.get("worker_peak_rss_mb"),
            "all_processes_at_most": round(
                r["main_peak_rss_mb"] + (info.get("worker_peak_rss_mb") or 0) * info["workers"]
            ),
        },
        "cache_mb": round(cache_mb, 1),
        "cache_hit_s": round(r["cache_hit_s"], 3),
        "second_run_hit": r["hit"],
        "generate_corpus_s": round(generate_s, 1),
    }


def bench_tui() -> dict[str, Any]:
    """Time to first frame of bert2-tui, and training tokens/s inside the TUI vs headless (same run).

    Runs `python -m bert2_tui.measure` in a child process, so bert2 itself never imports textual.
    """
    proc = subprocess.run([sys.executable, "-m", "bert2_tui.measure"], capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        return {"error": (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["failed"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


QUALITY_TASKS = tuple((task.name, data) for task in finetune_tasks() for data in task.builtin_data)
"""Every built-in data set of every fine-tuning task of the registry."""


def _baselines(task: str, data_name: str) -> dict[str, dict[str, float]]:
    """The simple methods' scores on the very validation examples the fine-tuned models are scored on."""
    task_cls = get_task(task)
    return task_cls.baselines(task_cls.data(data_name))


def bench_finetune_quality(
    minutes: float = 0.0, checkpoint: str | None = None, tasks: tuple[tuple[str, str], ...] = QUALITY_TASKS
) -> dict[str, Any]:
    """What pretraining buys, on any data: each (task, data) fine-tuned from the pretraining checkpoint and from
    scratch (same architecture, tokenizer and recipe: the one the data gives, or `minutes` of training each),
    beside the simplest baseline a user would try, all scored on the very same held-out rows.

    The checkpoint defaults to pretrain best/final under ./saved_model (`bert2 full --data FILE`, `bert2 quick` or
    `bert2 pretrain` first). Each run's final evaluation is the number reported.
    """
    source = str(ckpt.resolve(checkpoint) if checkpoint else ckpt.default_checkpoint(Config().paths.root, "pretrain"))
    out: dict[str, Any] = {"checkpoint": source, "minutes_each": minutes or "recipe", "tasks": {}}
    threads = torch.get_num_threads()
    for task, data_name in tasks:
        task_cls = get_task(task)
        data = task_cls.data(data_name)
        row: dict[str, Any] = {
            "held_out": {"examples": len(data.validation), "rule": data.held_out_rule or "the source's own split"},
            "baselines": task_cls.baselines(data),
        }
        for init in ("pretrained", "scratch"):
            with tempfile.TemporaryDirectory() as tmp:
                sets = [
                    f'paths.root="{tmp}"',
                    f"finetune.task={task}",
                    f'finetune.data="{data_name}"',
                    f'finetune.from_checkpoint="{source}"',
                ]
                if minutes:
                    sets += [
                        f"finetune.minutes={minutes}",
                        "finetune.max_steps=1000000",
                        "finetune.eval_every=0",
                        "finetune.save_every=0",
                    ]
                cfg = Config().with_overrides(sets)
                t0 = time.perf_counter()
                done = run_finetuning(cfg, [], from_checkpoint=SCRATCH if init == "scratch" else source)
                torch.set_num_threads(threads)
                row[init] = {
                    "step": done.step,
                    "wall_s": round(time.perf_counter() - t0, 1),
                    **{k: round(v, 4) for k, v in done.final_metrics.items() if "/" not in k},
                }
        key = task_cls.headline_metric
        row["pretraining_gain"] = round(row["pretrained"].get(key, 0.0) - row["scratch"].get(key, 0.0), 4)
        row["metric"] = key
        out["tasks"][f"{task}:{data_name}"] = row
    return out


BENCHMARKS: dict[str, Callable[..., dict[str, Any]]] = {
    "train_throughput": bench_train_throughput,
    "time_to_quality": bench_time_to_quality,
    "inference_latency": bench_inference_latency,
    "tui": bench_tui,
    "quick_rss": bench_quick_rss,
    "memory": bench_memory,
    "finetune_quality": bench_finetune_quality,
    "data_prep": bench_data_prep,
}
SLOW = ("finetune_quality", "memory", "data_prep")  # not part of a bare `bert2 bench`: 10 fine-tuning runs


def run(names: list[str], **kwargs: Any) -> dict[str, Any]:
    out = {}
    for name in names:
        t0 = time.perf_counter()
        result = BENCHMARKS[name](**kwargs.get(name, {}))
        result["bench_wall_s"] = round(time.perf_counter() - t0, 1)
        out[name] = result
    return out


if __name__ == "__main__":
    print(json.dumps(run(sys.argv[1:] or list(BENCHMARKS)), indent=2))
