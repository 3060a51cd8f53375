"""Checkpoint time-lapse: one run's saved checkpoints in step order, each read by the very Predictor the
playground and `bert2 inference mask` use, so a learner can scrub through how the model's guesses and attention
heads changed (`bert2 timelapse`, the Checkpoints screen, docs/watching-bert-learn.md).

A frame is {"step", "path", "stage", "probes": [{"text", "predictions": [[{"token", "score"}]]}],
"heads": [{"layer", "head", "type", "score"}], "loss"}; with `attention=True` also "attention": {"tokens",
"maps": (L, nh, T, T) nested lists} of the first text, for the HTML page's attention map.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .checkpoint.layout import STATE_FILE, is_complete, read_state, run_of, step_dirs, written_at
from .config import KINDS, STAGES
from .errors import CheckpointError

DEFAULT_TEXTS = ("The capital of France is [MASK].", "The cat sat on the mat because it was tired.")
"""What a time-lapse reads when the learner gives no --text: the default probe and one plain sentence."""


def run_checkpoints(target: str | os.PathLike, run_id: str | None = None) -> list[Path]:
    """The checkpoints of one run, in step order (one per step: checkpoint/ before best/ before final/).

    `target` is a step directory (its run), a stage directory or a kind directory (the run that wrote the newest
    checkpoint there); `run_id` picks another run of that kind directory."""
    p = Path(target)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if (p / STATE_FILE).is_file():  # a step directory: its run, from the kind directory above its stage
        run_id = run_id if run_id is not None else (run_of(p) or "")
        kind_dir = p.parent.parent
    elif p.name in STAGES:
        kind_dir = p.parent
    else:
        kind_dir = p
    found = [c for stage in STAGES for c in step_dirs(kind_dir / stage) if is_complete(c)]
    if not found:
        raise CheckpointError(f"no complete checkpoint in {kind_dir}")
    if run_id is None:
        newest = max(found, key=written_at)
        run_id = run_of(newest) or ""
    mine = [c for c in found if (run_of(c) or "") == run_id]
    if not mine:
        raise CheckpointError(f"{kind_dir} has no checkpoint of run {run_id!r}")
    by_step: dict[int, Path] = {}
    for c in mine:  # STAGES order: checkpoint, best, final; the first seen of a step wins
        by_step.setdefault(int(read_state(c).get("step", -1)), c)
    return [by_step[s] for s in sorted(by_step)]


def frame(predictor: Any, texts: Sequence[str], top_k: int = 5, attention: bool = False) -> dict[str, Any]:
    """One checkpoint's frame (see the module docstring), from a loaded Predictor."""
    from .microscope import HeadBatch, score_heads

    state = read_state(predictor.path)
    metrics = state.get("metrics") or {}
    probes = []
    masked = [t for t in texts if "[MASK]" in t]
    if masked:
        for text, predictions in zip(masked, predictor.fill_mask_batch(masked, top_k=top_k)):
            probes.append({"text": text, "predictions": predictions})
    core = predictor.model.bert if hasattr(predictor.model, "bert") else predictor.model
    batch = HeadBatch.from_texts(list(texts), predictor.tokenizer, core.config.max_position_embeddings)
    heads = [{k: h[k] for k in ("layer", "head", "type", "score")} for h in score_heads(predictor.model, batch)]
    loss = metrics.get("loss", metrics.get("mlm_loss"))
    out: dict[str, Any] = {
        "step": int(state.get("step", -1)),
        "path": str(predictor.path),
        "stage": predictor.path.parent.name,
        "probes": probes,
        "heads": heads,
        "loss": float(loss) if isinstance(loss, (int, float)) else None,
    }
    if attention:
        tokens, maps = predictor.attentions(texts[0])  # (L, nh, T, T)
        out["attention"] = {"text": texts[0], "tokens": tokens, "maps": maps.float().round(decimals=4).tolist()}
    return out


def timelapse(
    target: str | os.PathLike,
    texts: Sequence[str] = DEFAULT_TEXTS,
    top_k: int = 5,
    attention: bool = False,
    device: str = "cpu",
) -> list[dict[str, Any]]:
    """A frame for every checkpoint of the run `target` names, in step order."""
    from .inference import Predictor
    from .tasks.pretraining import check_mask_text

    texts = list(texts) or list(DEFAULT_TEXTS)
    for t in texts:
        if "[MASK]" in t:
            check_mask_text(t, top_k)
    frames = []
    for path in run_checkpoints(target):
        predictor = Predictor.load(path, device)
        if not hasattr(predictor.model, "mlm"):
            raise CheckpointError(f"{path} is a {predictor.task} checkpoint; a time-lapse reads pretraining runs")
        frames.append(frame(predictor, texts, top_k, attention))
    return frames


def default_target(root: str | os.PathLike) -> Path:
    """The pretraining kind directory under `root` (its newest run)."""
    return Path(root).joinpath(*KINDS["pretrain"])
