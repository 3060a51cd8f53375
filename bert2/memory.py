"""How much memory a configuration needs, computed from its numbers before anything is allocated.

Why: a model far too big for the machine (say `model.hidden_size=16384` with 24 layers: ~80 billion parameters)
used to prepare the data for minutes and then die with `can't allocate memory`, or be killed by the kernel. The
arithmetic below needs no torch, so the CLI refuses such a run at once and the Config screen shows the estimate
as you type.

Training in fp32 with AdamW keeps four numbers per parameter (the weight, its gradient, Adam's two moments):
16 bytes. Activations are what the forward pass keeps for the backward pass, per layer and per token of the
micro-batch (shape letters as in model/bert.py: B batch, T tokens, H hidden, I intermediate, nh heads, V vocabulary):

    x, qkv (3H), attention output, projection, LayerNorm      ~ 8H per token
    feed-forward up and its GELU                              ~ 2I per token
    attention scores and probabilities (B, nh, T, T)          2 nh T per token

plus the masked-LM head on the masked tokens (data.mlm_probability) ((M, V) logits and their gradient). The runtime itself (Python,
torch, tokenizers, the data index) takes about half a gigabyte before the first tensor. `bert2 bench memory`
compares this estimate with the measured peak RSS of real runs (README, Performance).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import Config, ConfigError, FieldError, ModelConfig

FP32 = 4
TRAIN_BYTES_PER_PARAM = 4 * FP32  # weight, gradient, Adam's exp_avg and exp_avg_sq
RUNTIME_BYTES = 500 * 2**20  # python + torch + transformers + tokenizers, measured before the first tensor


def count_parameters(m: ModelConfig, nsp: bool = True, heads: bool = True) -> int:
    """Parameters of bert2's BertForPreTraining for `m`, counted from the shapes (a test checks it against the
    built model): embeddings, L encoder layers, pooler, MLM head (its output matrix is the tied word embedding),
    and the NSP head."""
    V, H, I, L, P = m.vocab_size, m.hidden_size, m.intermediate_size, m.num_hidden_layers, m.max_position_embeddings
    embeddings = V * H + P * H + m.type_vocab_size * H + 2 * H  # word, position, segment tables + LayerNorm
    up = 2 * I if m.feed_forward == "glu" else I  # a GLU's first projection holds the gate and the value
    layer = (3 * H * H + 3 * H) + (H * H + H) + 2 * H + (H * up + up) + (I * H + H) + 2 * H  # qkv, out, LN, FFN, LN
    final_norm = 2 * H if m.norm_placement == "pre" else 0
    pooler = H * H + H
    total = embeddings + L * layer + final_norm + pooler
    if heads:
        total += V + H * H + H + 2 * H  # MLM: output bias, transform dense, LayerNorm
        total += (2 * H + 2) if nsp else 0
    return total


@dataclass
class MemoryEstimate:
    parameters: int
    weights_bytes: int
    optimizer_bytes: int  # gradients + Adam moments
    activation_bytes: int
    runtime_bytes: int
    available_bytes: int | None  # free memory of the device; None when unknown
    device: str

    @property
    def total_bytes(self) -> int:
        return self.weights_bytes + self.optimizer_bytes + self.activation_bytes + self.runtime_bytes

    @property
    def fits(self) -> bool:
        return self.available_bytes is None or self.total_bytes <= self.available_bytes

    def summary(self) -> str:
        free = f" of {gb(self.available_bytes)} free" if self.available_bytes is not None else ""
        return (
            f"{self.parameters / 1e6:,.1f}M parameters; training needs ~{gb(self.total_bytes)}{free} "
            f"(weights {gb(self.weights_bytes)}, gradients + Adam {gb(self.optimizer_bytes)}, activations "
            f"{gb(self.activation_bytes)}, runtime {gb(self.runtime_bytes)})"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "parameters": self.parameters,
            "weights_gb": _g(self.weights_bytes),
            "optimizer_gb": _g(self.optimizer_bytes),
            "activations_gb": _g(self.activation_bytes),
            "runtime_gb": _g(self.runtime_bytes),
            "total_gb": _g(self.total_bytes),
            "available_gb": _g(self.available_bytes) if self.available_bytes is not None else None,
            "device": self.device,
        }


def gb(n: float | None) -> str:
    return "?" if n is None else f"{n / 2**30:,.2f} GB" if n < 100 * 2**30 else f"{n / 2**30:,.0f} GB"


def _g(n: float) -> float:
    return round(n / 2**30, 3)


def activation_bytes(m: ModelConfig, batch: int, seq: int, nsp: bool, masked_share: float) -> int:
    """What one micro-batch keeps for the backward pass (see the module docstring), fp32; `masked_share` is
    data.mlm_probability."""
    B, T, H, I, nh, V = batch, seq, m.hidden_size, m.intermediate_size, m.num_attention_heads, m.vocab_size
    up = 2 * I if m.feed_forward == "glu" else I  # a GLU keeps gate, value and their product
    per_layer = B * T * (8 * H + I + up) + 2 * B * nh * T * T
    embeddings = 3 * B * T * H
    masked = int(masked_share * B * T)
    mlm = masked * (3 * H + 2 * V)  # transform, LayerNorm, logits and their gradient
    return FP32 * (m.num_hidden_layers * per_layer + embeddings + mlm + (B * H if nsp else 0))


def estimate(
    cfg: Config, kind: str = "pretrain", model_cfg: ModelConfig | None = None, available: int | None | str = "detect"
) -> MemoryEstimate:
    """Memory of training `cfg` (its pretraining or fine-tuning section) on its device."""
    m = model_cfg or cfg.model
    section = cfg.pretrain if kind == "pretrain" else cfg.finetune
    seq = cfg.data.max_seq_length if kind == "pretrain" else cfg.finetune.max_seq_length
    params = count_parameters(m, nsp=cfg.data.nsp)
    device = str(cfg.runtime.device)
    free = available_bytes(device) if available == "detect" else available
    return MemoryEstimate(
        parameters=params,
        weights_bytes=FP32 * params,
        optimizer_bytes=(TRAIN_BYTES_PER_PARAM - FP32) * params,
        activation_bytes=activation_bytes(m, section.batch_size, seq, cfg.data.nsp, cfg.data.mlm_probability),
        runtime_bytes=RUNTIME_BYTES,
        available_bytes=free if isinstance(free, int) else None,
        device=device,
    )


def memory_errors(
    cfg: Config, kind: str = "pretrain", model_cfg: ModelConfig | None = None, available: int | None | str = "detect"
) -> list[FieldError]:
    """A field error when the run cannot fit, naming the field whose change helps most."""
    return refusal(estimate(cfg, kind, model_cfg, available), kind)


def refusal(est: MemoryEstimate, kind: str = "pretrain") -> list[FieldError]:
    """The field error for an estimate that does not fit (none when it fits)."""
    if est.fits:
        return []
    batch_field = f"{'pretrain' if kind == 'pretrain' else 'finetune'}.batch_size"
    weights = est.weights_bytes + est.optimizer_bytes
    field = "model.hidden_size" if weights >= est.activation_bytes else batch_field
    hint = (
        "lower model.hidden_size, model.num_hidden_layers or model.intermediate_size"
        if field.startswith("model")
        else f"lower {batch_field} (raise the accumulation steps to keep the effective batch)"
    )
    return [FieldError(field, f"this run cannot fit: {est.summary()}; {hint}")]


def refuse_if_too_big(cfg: Config, kind: str, model_cfg: ModelConfig | None = None) -> None:
    """Raise ConfigError (exit 2 in the CLI, an error in the TUI) when the run cannot fit in free memory."""
    errors = memory_errors(cfg, kind, model_cfg)
    if errors:
        raise ConfigError(errors)


def available_bytes(device: str = "cpu") -> int | None:
    """Free memory for a run on `device`: on CUDA the GPU's free memory; otherwise the system's available memory,
    capped by a cgroup limit (containers). None when it cannot be read."""
    if device.startswith("cuda"):
        try:
            import torch  # only a CUDA run asks, and it has imported torch already

            if torch.cuda.is_available():
                index = int(device.split(":")[1]) if ":" in device else 0
                return int(torch.cuda.mem_get_info(index)[0])
        except (RuntimeError, ValueError, ImportError):
            return None
    free = _meminfo_available()
    limit = _cgroup_free()
    if free is None:
        return limit
    return min(free, limit) if limit is not None else free


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:  # macOS and other POSIX systems: free physical pages
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_free() -> int | None:
    """Limit minus usage of this process's cgroup (v2), when it has a limit."""
    base = Path("/sys/fs/cgroup")
    try:
        limit = (base / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((base / "memory.current").read_text().strip()))
    except (OSError, ValueError):
        return None


def peak_rss_mb() -> float:
    """This process's own peak resident memory in MB (Linux VmHWM; 0 elsewhere): what the benchmarks and the data
    workers report. Not ru_maxrss: Linux folds the parent's resident size at fork/exec into a child's maximum."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0
