"""Attention-head pruning: find the heads a trained model leans on least, remove them for real, and say what that
cost in quality and bought in speed. `bert2 prune` and the TUI call `run_pruning`; the pieces are public.

Michel, Levy & Neubig (2019), "Are Sixteen Heads Really Better than One?", found that most heads of a trained BERT
can go at test time with little loss, and gave a cheap way to find which:

    1. importance   Put a gate m_h = 1 on every head's output (a head mask, L x nh). Removing head h is setting
                    m_h from 1 to 0, and to first order that changes the loss by -dL/dm_h (a Taylor expansion
                    around m = 1). So |dL/dm_h|, averaged over held-out batches, estimates how much the loss
                    depends on head h, for all heads from ONE backward pass per batch instead of one evaluation per
                    head. Scores are normalised per layer by their L2 norm (as in the paper's code), so a layer
                    whose gradients are larger overall does not keep all its heads just for that.
    2. order        Heads sorted by ascending importance, never the last head of a layer (a layer without heads
                    would have no attention at all; bert2 keeps one, and so a 2-layer model can lose nh - 1 per
                    layer at most).
    3. curve        Mask heads in that order (the mask again, now 0 or 1) and evaluate the task's own held-out
                    metric at each count: how far pruning can go before quality drops.
    4. prune        Remove the N least important heads for real: smaller q/k/v and out projections
                    (compress/surgery.py prune_heads), so the speed-up is measured, not assumed.
    5. save         A new checkpoint whose config.json says what was removed (ModelConfig.pruned_heads) and how
                    it was chosen (the "bert2" block's "pruning" list); it loads, fine-tunes and exports.

Nothing here re-implements evaluation: the held-out data, the loss and the metric are the task's own (the task
registry, bert2/tasks/). The importance batches are a
seeded random sample of the held-out split and the curve evaluates the other examples, so the ranking is not
chosen on the examples that judge it whenever the split is large enough (`PruneResult.disjoint` says).

Shapes: L layers, nh heads per layer (before any pruning), B batch, T tokens.
"""

from __future__ import annotations

import copy
import math
import random
import statistics
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import checkpoint as ckpt
from .. import registry
from ..checkpoint.layout import check_output_dir, write_directory, write_state
from ..checkpoint.lock import KindLock
from ..checkpoint.model_files import load_checkpoint, write_model_files, write_weights
from ..config import KINDS, STAGES, Config
from ..data.collator import MLMCollator
from ..data.pretraining import prepare_pretraining_data
from ..errors import PruningError
from ..model import count_parameters
from ..tasks.finetuning import task_class
from ..tasks.pretraining import PretrainingTask
from ..training.distributed import resolve_device
from ..training.events import Callback, DoneEvent, EvalEvent, LogEvent
from . import PRUNE_TASKS
from .surgery import alive_heads, attention_parameters, encoder_of, head_grid, head_masked, heads_present, prune_heads

LOWER_IS_BETTER = ("loss", "mlm_loss", "nsp_loss", "perplexity")
MAX_CURVE_POINTS = 16  # default step: at most this many evaluations along the curve


# --------------------------------------------------------------------------------------------------------------
# The head mask, and importance from its gradient
# --------------------------------------------------------------------------------------------------------------


def head_importance(
    model: nn.Module, batches: Sequence[Any], loss_fn: Callable[[nn.Module, Any], torch.Tensor], normalize: bool = True
) -> torch.Tensor:
    """(L, nh) importance of every head: mean over `batches` of |dL/dm_h|, L = `loss_fn(model, batch)` computed
    with a head mask m of ones; with `normalize`, divided per layer by the layer's L2 norm (Michel et al.).
    Heads already pruned are NaN.

    The model's weights get no gradient (only the mask does, so backward is cheaper than in training) and run in
    eval mode: dropout would make the gradient a sample of a different model."""
    if not batches:
        raise PruningError("head importance needs at least one batch of held-out data")
    L, nh = head_grid(model)
    device = next(model.parameters()).device
    mask = torch.ones(L, nh, device=device, requires_grad=True)  # m: every head fully on
    total = torch.zeros(L, nh, device=device)
    was_training = model.training
    wanted = [p.requires_grad for p in model.parameters()]
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        with torch.enable_grad(), head_masked(model, mask):
            for batch in batches:
                (grad,) = torch.autograd.grad(loss_fn(model, batch), mask)  # (L, nh) dL/dm
                total += grad.abs()
    finally:
        for p, w in zip(model.parameters(), wanted):
            p.requires_grad_(w)
        model.train(was_training)
    importance = (total / len(batches)).cpu()  # (L, nh)
    alive = alive_heads(model)
    if normalize:
        norm = importance.where(alive, torch.zeros(())).norm(dim=-1, keepdim=True)  # (L, 1)
        importance = importance / (norm + 1e-20)
    return importance.masked_fill(~alive, float("nan"))


def pruning_order(importance: torch.Tensor) -> list[tuple[int, int]]:
    """(layer, head) pairs from least to most important, leaving out each layer's most important head (and heads
    already pruned, NaN): the order in which heads can go without ever emptying a layer.

    Walking the heads in ascending importance and skipping a layer's last survivor is the same as dropping each
    layer's maximum, since every other head of that layer comes earlier in the walk."""
    L, nh = importance.shape
    left = [int((~importance[i].isnan()).sum()) for i in range(L)]
    ranked = sorted(
        (float(importance[i, h]), i, h) for i in range(L) for h in range(nh) if not math.isnan(float(importance[i, h]))
    )
    order = []
    for _, layer, head in ranked:
        if left[layer] > 1:
            order.append((layer, head))
            left[layer] -= 1
    return order


def mask_without(grid: tuple[int, int], removed: Iterable[tuple[int, int]]) -> torch.Tensor:
    """(L, nh) head mask of ones with zeros at the `removed` (layer, head) pairs."""
    mask = torch.ones(grid)
    for layer, head in removed:
        mask[layer, head] = 0.0
    return mask


def by_layer(pairs: Iterable[tuple[int, int]]) -> dict[int, list[int]]:
    """[(layer, head), ...] -> {layer: [heads]} (sorted)."""
    out: dict[int, list[int]] = {}
    for layer, head in pairs:
        out.setdefault(layer, []).append(head)
    return {layer: sorted(out[layer]) for layer in sorted(out)}


# --------------------------------------------------------------------------------------------------------------
# Speed
# --------------------------------------------------------------------------------------------------------------


@torch.no_grad()
def measure_speed(
    full: nn.Module, pruned: nn.Module, batches: Sequence[dict[str, torch.Tensor]], warmup: int = 1, repeats: int = 5
) -> dict[str, dict[str, float]]:
    """Inference time of `full` and `pruned` on the same `batches`: for the encoder alone (where pruning acts)
    and for the whole task model (heads included), each the median of `repeats` timed passes over all batches
    after `warmup` untimed ones. Full and pruned alternate pass by pass, so a slow moment of a shared machine hits
    both alike. In ms per batch; speedup = full / pruned.

    Two clocks: wall time (what a user waits) and, on a CPU, the process's CPU time (summed over its threads).
    With one thread (runtime.num_threads = 1) CPU time counts the work done and not the time spent waiting for
    cores that other processes hold, so on a busy shared machine it is the steadier measure of what pruning
    saved; with several, threads spin while they wait for each other, and both clocks include the contention."""

    def sync(model: nn.Module) -> None:
        device = next(model.parameters()).device
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def one_pass(model: nn.Module, part: str) -> tuple[float, float]:
        run = encoder_of(model) if part == "encoder" else model
        sync(model)
        wall, cpu = time.perf_counter(), time.process_time()
        for b in batches:
            run(b["input_ids"], b.get("token_type_ids"), b.get("attention_mask"))
        sync(model)
        n = max(len(batches), 1)
        return (time.perf_counter() - wall) * 1000 / n, (time.process_time() - cpu) * 1000 / n

    def ratio(a: float, b: float) -> float:
        return a / b if b > 0 else float("nan")

    on_cpu = next(full.parameters()).device.type == "cpu"
    out: dict[str, dict[str, float]] = {}
    for model in (full, pruned):
        model.eval()
    for part in ("encoder", "model"):
        wall: dict[str, list[float]] = {"full": [], "pruned": []}
        cpu: dict[str, list[float]] = {"full": [], "pruned": []}
        for i in range(warmup + repeats):
            for name, model in (("full", full), ("pruned", pruned)):
                w, c = one_pass(model, part)
                if i >= warmup:
                    wall[name].append(w)
                    cpu[name].append(c)
        f, p = statistics.median(wall["full"]), statistics.median(wall["pruned"])
        out[part] = {"full_ms": f, "pruned_ms": p, "speedup": ratio(f, p), "repeats": repeats, "batches": len(batches)}
        if on_cpu:
            f, p = statistics.median(cpu["full"]), statistics.median(cpu["pruned"])
            out[part].update(full_cpu_ms=f, pruned_cpu_ms=p, cpu_speedup=ratio(f, p))
    return out


# --------------------------------------------------------------------------------------------------------------
# The held-out data, loss and metric of a checkpoint's task
# --------------------------------------------------------------------------------------------------------------


@dataclass
class TaskBench:
    """What pruning needs from a task: batches for the importance gradient (with labels, on the device), the
    task's loss on one such batch, and its held-out evaluation."""

    task: str
    kind: str  # pretrain | finetune
    importance_batches: list[dict[str, torch.Tensor]]
    loss: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor]
    evaluate: Callable[[nn.Module], dict[str, float]]
    data: str
    """Where the held-out examples come from (a corpus or a task data name)."""
    eval_examples: int
    importance_examples: int
    disjoint: bool
    """True when the importance batches and the curve's evaluation share no example."""
    notes: list[str] = field(default_factory=list)


def held_out_split(n: int, importance: int, evaluated: int, seed: int = 0) -> tuple[list[int], list[int], bool]:
    """Indices into a held-out split of `n` examples: (for the importance, for the curve, disjoint?).

    The importance gets a seeded random sample of `importance` examples and the curve the others (at most
    `evaluated`, all when 0), so the order of the heads is not chosen on the examples that judge it; when nothing
    is left over, the curve evaluates everything (not disjoint). Random rather than a prefix and a suffix: a split
    may be stored sorted (imdb-offline's held-out reviews come negatives first, so a prefix is one class)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    chosen = sorted(order[: min(importance, n)])
    rest = order[len(chosen) :]
    if evaluated > 0:
        rest = rest[:evaluated]
    if not rest:
        return chosen, sorted(order[:evaluated]) if evaluated > 0 else list(range(n)), False
    return chosen, sorted(rest), True


def pretraining_bench(
    cfg: Config, loaded: Any, batches: int, eval_batches: int, batch_size: int, device: torch.device
) -> TaskBench:
    """MLM (+NSP) on the checkpoint's own held-out split: the corpus and split settings of the run that made it
    (trainer_state.json run_config; the current [data] otherwise), with this configuration's cache directory."""
    run_config = ckpt.read_state(loaded.path).get("run_config")
    dcfg = Config.from_dict(run_config, strict=False) if isinstance(run_config, dict) else cfg.copy()
    dcfg.data.cache_dir = cfg.data.cache_dir
    dcfg.data.nsp = getattr(loaded.model, "nsp", None) is not None
    dcfg.pretrain.batch_size = batch_size
    dcfg.pretrain.eval_batches = 0  # evaluate every example handed over: the selection is made here
    data = prepare_pretraining_data(dcfg, loaded.tokenizer)
    limit = loaded.model_cfg.max_position_embeddings
    validation = data.validation
    imp_idx, eval_idx, disjoint = held_out_split(
        len(validation), batches * batch_size, eval_batches * batch_size, dcfg.data.seed
    )
    task = PretrainingTask(dcfg, loaded.tokenizer, [validation[i] for i in eval_idx], probes=())
    d = dcfg.data
    collator = MLMCollator(
        loaded.tokenizer, d.mlm_probability, d.mask_replace_prob, d.random_replace_prob, seed=4321
    )  # fixed masks: the same importance batches on every run
    examples = [e for e in (validation[i] for i in imp_idx) if len(e["input_ids"]) <= limit]
    imp_batches = []
    for start in range(0, len(examples), batch_size):
        batch = collator(examples[start : start + batch_size])
        if not dcfg.data.nsp:
            batch.pop("next_sentence_label", None)
        imp_batches.append({k: v.to(device) for k, v in batch.items()})

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return task.loss(model, batch, task.count(batch))[0]  # the trainer's own loss: mlm (+ nsp)

    return TaskBench(
        loaded.task, "pretrain", imp_batches, loss, task.evaluate, d.corpus, len(eval_idx), len(examples), disjoint
    )


def finetuning_bench(
    cfg: Config,
    loaded: Any,
    batches: int,
    eval_batches: int,
    batch_size: int,
    device: torch.device,
    data_name: str | None = None,
) -> TaskBench:
    """The fine-tuned task's validation split (the data named in the checkpoint's metadata, split with the run's
    seed), featurised as evaluation does, with the task's own loss and `evaluate`."""
    meta, task_name = loaded.meta, loaded.task
    run_config = ckpt.read_state(loaded.path).get("run_config")
    seed = cfg.data.seed
    if isinstance(run_config, dict):
        seed = int((run_config.get("data") or {}).get("seed", seed))
    name = data_name or str(meta.get("data") or "")
    if not name:
        raise PruningError(f"{loaded.path} does not name its fine-tuning data (config.json bert2.data); pass --data")
    task_cls = task_class(task_name)
    data = task_cls.data(name, 0, seed=seed)
    limit = loaded.model_cfg.max_position_embeddings
    length = min(int(meta.get("max_seq_length") or limit), limit)
    features = task_cls.featurize(data.validation, loaded.tokenizer, length, meta, for_eval=True)

    imp_idx, eval_idx, disjoint = held_out_split(
        len(data.validation), batches * batch_size, eval_batches * batch_size, seed
    )
    eval_examples = [data.validation[i] for i in eval_idx]
    if features and "example_index" in features[0]:  # several windows per question (qa-span), each naming it
        position = {old: new for new, old in enumerate(eval_idx)}
        eval_features = [
            {**f, "example_index": position[f["example_index"]]} for f in features if f["example_index"] in position
        ]
        wanted = set(imp_idx)
        imp_features = [f for f in features if f["example_index"] in wanted]
    else:  # one feature per example
        eval_features = [features[i] for i in eval_idx]
        imp_features = [features[i] for i in imp_idx]
    task = task_cls(loaded.tokenizer, meta, eval_examples, eval_features, batch_size)
    imp_batches = [
        {k: v.to(device) for k, v in task.collate(imp_features[s : s + batch_size]).items()}
        for s in range(0, len(imp_features), batch_size)
    ][:batches]

    def loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return task.loss(model, batch, task.count(batch))[0]  # the trainer's own loss for this task

    return TaskBench(
        task_name,
        "finetune",
        imp_batches,
        loss,
        task.evaluate,
        name,
        len(eval_examples),
        len(imp_idx),
        disjoint,
        list(data.notes),
    )


# --------------------------------------------------------------------------------------------------------------
# The whole procedure
# --------------------------------------------------------------------------------------------------------------


@dataclass
class CurvePoint:
    removed: int
    """Heads masked (in importance order)."""
    value: float
    """The curve's metric at this count."""
    metrics: dict[str, float]


@dataclass
class PruneResult:
    """What `run_pruning` measured and wrote; `to_dict()` is `bert2 prune --json`."""

    source: Path
    task: str
    metric: str
    importance: list[list[float | None]]
    """(L, nh) normalised importance; None for heads pruned before this run."""
    order: list[tuple[int, int]]
    """(layer, head) from least to most important; each layer's most important head is never listed."""
    removed: dict[int, list[int]]
    """Heads this run removed, by layer (original indices)."""
    pruned_heads: dict[str, list[int]]
    """All heads the saved model lacks (this run's and earlier ones): its config's pruned_heads."""
    curve: list[CurvePoint]
    before: dict[str, float]
    after: dict[str, float]
    """Held-out metrics of the full model and of the really pruned one."""
    params_before: int
    params_after: int
    attention_params_before: int
    attention_params_after: int
    speed: dict[str, dict[str, float]]
    data: str
    importance_examples: int
    eval_examples: int
    disjoint: bool
    path: Path | None = None
    """The pruned checkpoint; None for a dry run."""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": str(self.source),
            "task": self.task,
            "metric": self.metric,
            "importance": self.importance,
            "order": [list(p) for p in self.order],
            "removed": {str(k): v for k, v in self.removed.items()},
            "pruned_heads": self.pruned_heads,
            "curve": [{"removed": c.removed, "value": c.value, "metrics": c.metrics} for c in self.curve],
            "before": self.before,
            "after": self.after,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "attention_params_before": self.attention_params_before,
            "attention_params_after": self.attention_params_after,
            "speed": self.speed,
            "data": self.data,
            "importance_examples": self.importance_examples,
            "eval_examples": self.eval_examples,
            "disjoint": self.disjoint,
            "path": str(self.path) if self.path else None,
            "warnings": self.warnings,
        }


def heads_to_remove(total: int, layers: int, heads: int | None = None, fraction: float | None = None) -> int:
    """How many heads `--heads N` or `--fraction F` (of the `total` heads still present) asks to remove; a
    PruningError when it is not a count pruning can honour (at least 1, at most total - layers: one per layer
    stays)."""
    if (heads is None) == (fraction is None):
        raise PruningError("say how many heads to remove: --heads N or --fraction F (one of them)")
    most = total - layers
    if most < 1:
        raise PruningError(
            f"the model has {total} heads in {layers} layers: one per layer must stay, so none can be removed"
        )
    if fraction is not None:
        if not 0.0 < fraction < 1.0:
            raise PruningError(f"--fraction must be between 0 and 1 (a share of the {total} heads), got {fraction}")
        heads = round(fraction * total)
        if heads < 1:
            raise PruningError(f"--fraction {fraction} of {total} heads rounds to 0; ask for more")
        if heads > most:
            raise PruningError(
                f"--fraction {fraction} of {total} heads is {heads}, but at most {most} can go "
                f"(each of the {layers} layers keeps at least one head)"
            )
        return heads
    assert heads is not None
    if heads < 1:
        raise PruningError(f"--heads must be at least 1, got {heads}")
    if heads > most:
        raise PruningError(
            f"--heads {heads} is too many: the model has {total} heads in {layers} layers and each "
            f"layer keeps at least one, so at most {most} can be removed"
        )
    return heads


def curve_counts(most: int, chosen: int, step: int = 0) -> list[int]:
    """Counts of removed heads the curve evaluates: 0, every `step`-th (default: about MAX_CURVE_POINTS points),
    `chosen` and `most`."""
    step = step if step > 0 else max(1, math.ceil(most / (MAX_CURVE_POINTS - 1)))
    return sorted(set(range(0, most + 1, step)) | {0, chosen, most})


def pick_metric(task: str, metrics: dict[str, float], wanted: str | None) -> str:
    if wanted:
        if wanted not in metrics:
            raise PruningError(
                f"--metric {wanted!r} is not one this task reports; choose from "
                f"{', '.join(k for k in metrics if '/' not in k)}"
            )
        return wanted
    name = (
        registry.get(task).headline_metric if task in registry.TASKS else "loss"
    )  # the task's headline (higher better)
    return name if name in metrics else "loss"


def evaluate_curve(
    model: nn.Module,
    evaluate: Callable[[nn.Module], dict[str, float]],
    order: list[tuple[int, int]],
    counts: Sequence[int],
    metric: str | None = None,
    task: str = "",
    on_point: Callable[[CurvePoint], None] | None = None,
) -> tuple[str, list[CurvePoint]]:
    """The held-out metric with the first k heads of `order` masked, for each k in `counts`: (metric, points)."""
    grid = head_grid(model)
    points: list[CurvePoint] = []
    for k in counts:
        with head_masked(model, mask_without(grid, order[:k]).to(next(model.parameters()).device)):
            metrics = {n: float(v) for n, v in evaluate(model).items()}
        metric = pick_metric(task, metrics, metric)  # checked at the first point, before the long part
        point = CurvePoint(k, float(metrics.get(metric, float("nan"))), metrics)
        points.append(point)
        if on_point is not None:
            on_point(point)
    return metric or "loss", points


def _destination(
    source: Path, kind: str, step: int, cfg: Config, out: str | Path | None, force: bool
) -> tuple[Path, bool]:
    """Where the pruned checkpoint goes: (path, is_stage_dir). Default: the final/ stage of the source's kind (in
    the source's own saved_model root when it lives in one), whose previous content it replaces, as a new
    training run would; refused when that previous final is the checkpoint being pruned (unless `force`). With
    `out`: that directory, as one complete checkpoint."""
    if out is not None:  # checked now, before the measurements; written by write_directory at the end
        target = Path(out).expanduser()
        if target.resolve() == source.resolve() or target.resolve() in source.resolve().parents:
            raise PruningError(f"--out {target} holds the checkpoint being pruned; choose another directory")
        check_output_dir(target, force)
        return target, False
    parts = KINDS[kind]
    in_layout = source.parent.name in STAGES and tuple(source.resolve().parents[1].parts[-2:]) == parts
    stage = (source.parents[1] if in_layout else ckpt.kind_dir(cfg.paths.root, kind)) / "final"
    for existing in ckpt.step_dirs(stage):
        if existing.resolve() == source.resolve() and not force:
            raise PruningError(
                f"the pruned model would replace {source}, the checkpoint being pruned (final/ keeps "
                "one checkpoint); pass --out DIR to write it elsewhere, or --force to replace it"
            )
    return stage, True


def run_pruning(
    cfg: Config,
    checkpoint: str | Path,
    heads: int | None = None,
    fraction: float | None = None,
    batches: int = 8,
    eval_batches: int = 0,
    batch_size: int = 0,
    curve: bool = True,
    curve_step: int = 0,
    metric: str | None = None,
    data: str | None = None,
    repeats: int = 5,
    time_batches: int = 2,
    out: str | Path | None = None,
    force: bool = False,
    dry_run: bool = False,
    callbacks: Sequence[Callback] = (),
) -> PruneResult:
    """Score every head of `checkpoint` by the gradient of its task's held-out loss with respect to a head mask,
    evaluate the held-out metric as heads are masked in importance order (the curve), remove the N least
    important heads for real (`heads=N` or `fraction=F` of the heads present), time full vs pruned on the same
    batches, and save the pruned model as a new checkpoint of the same kind (unless `dry_run`).

    Events: a LogEvent per stage, an EvalEvent per curve point (step = heads masked; metrics include
    "heads_removed"), a DoneEvent at the end (step = heads removed). Bert2Error subclasses for anything the user
    can fix; nothing is written before every measurement succeeded.
    """

    def emit(event: Any) -> None:
        for cb in callbacks:
            cb(event)

    def say(message: str, level: str = "info") -> None:
        emit(LogEvent(level=level, message=message))

    if batches < 1:
        raise PruningError(f"--batches must be at least 1 (validation batches for the importance), got {batches}")
    if eval_batches < 0 or curve_step < 0 or repeats < 1 or time_batches < 1:
        raise PruningError("--eval-batches and --curve-step must be >= 0, --repeats and --time-batches >= 1")
    r = cfg.runtime
    if r.num_threads > 0:
        torch.set_num_threads(r.num_threads)
    device = resolve_device(r.device)
    source = ckpt.resolve(checkpoint)
    info = load_checkpoint(source, weights=False)
    if info.task not in PRUNE_TASKS:
        raise PruningError(
            f"{source} is a {info.task} checkpoint; bert2 prune handles {', '.join(PRUNE_TASKS)} "
            "checkpoints (a generative QA model's decoder has attention of its own, and its "
            "evaluation generates text, which makes the curve very slow)"
        )
    kind = registry.kind_of(info.task)
    L, nh = info.model_cfg.num_hidden_layers, info.model_cfg.num_attention_heads
    present = heads_present(info.model_cfg)
    n_remove = heads_to_remove(present, L, heads, fraction)
    step = int(ckpt.read_state(source).get("step", 0))
    target, stage_dir = (None, False) if dry_run else _destination(source, kind, step, cfg, out, force)

    loaded = load_checkpoint(source, device)
    model = loaded.model.eval()
    size = batch_size or (cfg.pretrain.batch_size if kind == "pretrain" else cfg.finetune.batch_size)
    say(f"{source}: {loaded.task}, {L} layers x {nh} heads ({present} present); removing {n_remove}")
    say("preparing held-out data")
    bench = (
        pretraining_bench(cfg, loaded, batches, eval_batches, size, device)
        if kind == "pretrain"
        else finetuning_bench(cfg, loaded, batches, eval_batches, size, device, data)
    )
    for note in bench.notes:
        say(note)
    warnings: list[str] = []
    if not bench.disjoint:
        warnings.append(
            f"the held-out split ({bench.data}) is too small to keep the importance batches apart from "
            "the evaluated examples; the curve is measured on the data that chose the order too "
            "(lower --batches)"
        )

    say(
        f"head importance: |dL/d mask| over {len(bench.importance_batches)} held-out batches "
        f"({bench.importance_examples} examples of {bench.data})"
    )
    importance = head_importance(model, bench.importance_batches, bench.loss)
    order = pruning_order(importance)
    chosen = order[:n_remove]

    counts = curve_counts(len(order), n_remove, curve_step) if curve else [0, n_remove]

    def on_point(point: CurvePoint) -> None:
        emit(EvalEvent(step=point.removed, metrics={"heads_removed": float(point.removed), **point.metrics}))

    say(f"curve: {bench.eval_examples} held-out examples evaluated at {len(counts)} counts of masked heads")
    metric_name, points = evaluate_curve(model, bench.evaluate, order, counts, metric, loaded.task, on_point)
    before = points[0].metrics

    pruned = prune_heads(copy.deepcopy(model), by_layer(chosen)).eval()
    after = {k: float(v) for k, v in bench.evaluate(pruned).items()}
    masked_value = next(pt.value for pt in points if pt.removed == n_remove)
    if abs(after.get(metric_name, masked_value) - masked_value) > 1e-3 * max(1.0, abs(masked_value)):
        warnings.append(
            f"the pruned model's {metric_name} ({after.get(metric_name):.4f}) differs from the masked "
            f"model's ({masked_value:.4f}); float rounding can flip a few close predictions"
        )
    timed = [
        {k: b[k] for k in ("input_ids", "token_type_ids", "attention_mask") if k in b}
        for b in bench.importance_batches[:time_batches]
    ]
    say(f"timing full vs pruned: {repeats} passes over {len(timed)} held-out batches each")
    speed = measure_speed(model, pruned, timed, repeats=repeats)

    grid_importance = [[None if math.isnan(v) else round(float(v), 6) for v in row] for row in importance.tolist()]
    result = PruneResult(
        source,
        loaded.task,
        metric_name,
        grid_importance,
        order,
        by_layer(chosen),
        dict(pruned.config.pruned_heads),
        points,
        before,
        after,
        count_parameters(model),
        count_parameters(pruned),
        attention_parameters(model),
        attention_parameters(pruned),
        speed,
        bench.data,
        bench.importance_examples,
        bench.eval_examples,
        bench.disjoint,
        warnings=warnings,
    )
    for w in warnings:
        say(w, "warning")
    if not dry_run:
        assert target is not None
        replaced = [d.name for d in ckpt.step_dirs(target)] if stage_dir else []
        result.path = save_pruned(pruned, loaded, result, target, stage_dir, step, force)
        say(
            f"saved the pruned model -> {result.path}"
            + (f" (replacing the previous {target.name}/: {', '.join(replaced)})" if replaced else "")
        )
    emit(
        DoneEvent(
            reason="completed",
            step=n_remove,
            message=f"removed {n_remove} heads: {metric_name} {before.get(metric_name, float('nan')):.4g} -> "
            f"{after.get(metric_name, float('nan')):.4g}, encoder "
            f"{speed['encoder']['speedup']:.2f}x faster"
            + (f" -> {result.path}" if result.path else " (dry run: nothing saved)"),
            final_metrics={**after, "heads_removed": float(n_remove)},
        )
    )
    return result


def pruning_record(result: PruneResult, step: int) -> dict[str, Any]:
    """The "pruning" entry of the config.json "bert2" block: what was removed, from what, how it was chosen."""
    return {
        "source": str(result.source),
        "source_step": step,
        "created": ckpt.now_iso(),
        "method": "gradient of the held-out loss w.r.t. a head mask, |dL/dm| averaged over batches, L2-normalised "
        "per layer (Michel et al. 2019)",
        "removed": {str(k): v for k, v in result.removed.items()},
        "importance": result.importance,
        "importance_examples": result.importance_examples,
        "data": result.data,
        "metric": result.metric,
        "curve": [{"removed": c.removed, "value": c.value} for c in result.curve],
        "before": {k: v for k, v in result.before.items() if "/" not in k},
        "after": {k: v for k, v in result.after.items() if "/" not in k},
        "params_before": result.params_before,
        "params_after": result.params_after,
        "speedup": {
            part: {k: round(v, 4) for k, v in s.items() if k.endswith("speedup")} for part, s in result.speed.items()
        },
    }


def save_pruned(
    model: nn.Module, loaded: Any, result: PruneResult, target: Path, stage_dir: bool, step: int, force: bool = False
) -> Path:
    """Write the pruned model as a checkpoint: into the stage directory `target` as step-N (save_checkpoint), or
    as the directory `target` itself; config.json keeps the source's task metadata and extra keys, adds the
    pruning record, and carries pruned_heads so every loader rebuilds the smaller shapes."""
    meta = dict(loaded.meta)
    meta["pruning"] = list(meta.get("pruning") or []) + [pruning_record(result, step)]
    extra = {k: loaded.config[k] for k in ("architectures", "id2label", "label2id") if k in loaded.config}
    source_state = ckpt.read_state(loaded.path)
    kind = registry.kind_of(loaded.task)
    state = {
        "kind": kind,
        "task": loaded.task,
        "metrics": {k: v for k, v in result.after.items() if "/" not in k},
        "pruned_from": str(loaded.path),
        "run_config": source_state.get("run_config"),
        "note": f"pruned by `bert2 prune` from {loaded.path}: {sum(map(len, result.removed.values()))} attention "
        "heads removed; no optimizer state (fine-tune it with --from, not --resume)",
    }

    def payload(directory: Path) -> None:
        write_weights(model, directory)
        write_model_files(model.config, loaded.tokenizer, directory, meta, extra)

    if stage_dir:
        with KindLock(target.parent):  # one writer at a time in the kind's directories
            path = ckpt.save_checkpoint(target, step, payload, state)
            ckpt.rotate(target, 0, protect={path})  # final/ holds the pruned model alone
        return path

    def whole(directory: Path) -> None:
        payload(directory)
        write_state(directory, **{**state, "step": step})  # last: its presence marks the checkpoint whole

    return write_directory(target, whole, force, protect=(loaded.path,))
