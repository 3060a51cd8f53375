"""Head surgery on a built model: switch attention heads off (a head mask) or take them out for real.

The model files (model/bert.py) know nothing of pruning. As in transformers, a pruned model is built at full size
and then pruned: `prune_heads` swaps a layer's `MultiHeadAttention` for a `PrunedAttention` with smaller q/k/v and
output projections holding the survivors' weights, and records what went in the config (`model.pruned_heads`); a
pruned checkpoint is loaded by building the full model, `restore_pruned_heads` (the same swap, weights to be
loaded), and a strict `load_state_dict`.

The head mask (L, nh) scales each head's output before the output projection, through a forward pre-hook on that
projection, so any code that runs the model (a task's own loss or evaluation) runs it masked unchanged: 0 switches
a head off exactly as removing it would, and the gradient with respect to the mask is what bert2 prune ranks heads
by (compress/prune.py).

Shapes: L layers, nh heads per layer (before any pruning), B batch, T tokens, hs head size, H hidden.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from ..config import ModelConfig, normalize_pruned_heads, pruned_heads_problems
from ..errors import PruningError
from ..model import BertModel
from ..model.bert import MultiHeadAttention


class PrunedAttention(MultiHeadAttention):
    """Self-attention with some of its heads removed: the fused projection is (H -> 3 * nh_kept * hs) and `out`
    reads nh_kept * hs inputs, hs unchanged; `kept_heads` are the survivors' original indices, in order.

    It receives what every layer receives: an ALiBi bias has a row per original head, of which it reads its
    survivors' (their own distance slopes); its attention maps get a row per original head again (zeros where a
    head was removed), so the UI's grid of layers x heads keeps its shape.
    """

    def __init__(self, cfg: ModelConfig, kept: Sequence[int]):
        super().__init__(cfg)
        self.total_heads = cfg.num_attention_heads
        self.kept_heads = tuple(sorted(set(kept)))
        if not self.kept_heads or self.kept_heads[0] < 0 or self.kept_heads[-1] >= self.total_heads:
            raise ValueError(f"kept heads {kept} must be a non-empty subset of 0-{self.total_heads - 1}")
        self.num_heads = len(self.kept_heads)
        inner = self.num_heads * self.head_size
        self.qkv = nn.Linear(cfg.hidden_size, 3 * inner)
        self.out = nn.Linear(inner, cfg.hidden_size)
        self.register_buffer("kept_index", torch.tensor(self.kept_heads), persistent=False)  # (nh_kept,)

    def forward(
        self, x: torch.Tensor, mask: torch.Tensor | None = None, output_attentions: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        if mask is not None and mask.is_floating_point() and mask.shape[1] == self.total_heads > 1:
            mask = mask.index_select(1, self.kept_index)  # (1|B, nh_kept, T, T): the survivors' ALiBi slopes
        y, probs = super().forward(x, mask, output_attentions)
        if probs is not None:  # (B, nh_kept, T, T) -> (B, nh, T, T), zeros at removed heads
            full = probs.new_zeros(probs.shape[0], self.total_heads, *probs.shape[2:])
            probs = full.index_copy_(1, self.kept_index, probs)
        return y, probs


def encoder_of(model: nn.Module) -> BertModel:
    """The BertModel inside a task model (`.bert`), or the model itself."""
    core = getattr(model, "bert", model)
    if not isinstance(core, BertModel):
        raise PruningError(f"{type(model).__name__} holds no bert2 BertModel; nothing to prune")
    return core


def kept_heads(attention: nn.Module, num_heads: int) -> tuple[int, ...]:
    """Original indices of the heads an attention layer still has."""
    return tuple(getattr(attention, "kept_heads", range(num_heads)))


def head_grid(model: nn.Module) -> tuple[int, int]:
    """(L, nh): the shape of a head mask for this model (nh before any pruning)."""
    core = encoder_of(model)
    return len(core.encoder.layers), core.config.num_attention_heads


def alive_heads(model: nn.Module) -> torch.Tensor:
    """(L, nh) bool: True where a head still exists (False where an earlier pruning removed it)."""
    L, nh = head_grid(model)
    alive = torch.zeros(L, nh, dtype=torch.bool)
    for i, layer in enumerate(encoder_of(model).encoder.layers):
        alive[i, list(kept_heads(layer.attention, nh))] = True
    return alive


def heads_present(model_cfg: ModelConfig) -> int:
    """Attention heads a model of this config has, all layers together, after any earlier pruning."""
    return model_cfg.num_hidden_layers * model_cfg.num_attention_heads - sum(
        len(v) for v in model_cfg.pruned_heads.values()
    )


@contextmanager
def head_masked(model: nn.Module, head_mask: torch.Tensor) -> Iterator[None]:
    """Run `model` with `head_mask` (L, nh) for the duration of the block: head h of layer l contributes
    head_mask[l, h] times its output. The hooks are gone after the block."""
    L, nh = head_grid(model)
    if tuple(head_mask.shape) != (L, nh):
        raise ValueError(f"head_mask must be (layers, heads) = ({L}, {nh}), got {tuple(head_mask.shape)}")
    handles = []
    for i, layer in enumerate(encoder_of(model).encoder.layers):
        attention = layer.attention
        kept = torch.tensor(kept_heads(attention, nh), device=head_mask.device)

        def scale(
            module: nn.Module, args: tuple, i: int = i, kept: torch.Tensor = kept, hs: int = attention.head_size
        ) -> tuple:
            # Selected at every call, so each forward pass gets its own path back to the mask (importance takes
            # one gradient per batch).
            m = head_mask[i].index_select(0, kept)  # (nh_kept,) the mask of the heads this layer has
            y = args[0]  # (B, T, nh_kept * hs): the heads side by side, before the output projection
            B, T, _ = y.shape
            return ((y.view(B, T, -1, hs) * m.to(y.dtype).view(1, 1, -1, 1)).view(B, T, -1),)

        handles.append(attention.out.register_forward_pre_hook(scale))
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def _pruned_copy(attention: MultiHeadAttention, cfg: ModelConfig, survivors: list[int]) -> PrunedAttention:
    """A PrunedAttention holding `attention`'s weights for the `survivors` (original indices): their rows of the
    fused q/k/v projection and their input columns of the output projection. The output bias stays whole: it is
    added after the heads are summed, so no single head owns it."""
    now = kept_heads(attention, cfg.num_attention_heads)
    hs, inner = attention.head_size, attention.num_heads * attention.head_size
    slots = [now.index(h) for h in survivors]  # where each survivor sits in today's layout
    cols = torch.cat([torch.arange(i * hs, (i + 1) * hs) for i in slots])  # (nh_new * hs,)
    rows = torch.cat([cols + part * inner for part in range(3)])  # (3 * nh_new * hs,) its q, k and v rows
    weight = attention.qkv.weight
    new = PrunedAttention(cfg, survivors).to(device=weight.device, dtype=weight.dtype)
    new.train(attention.training)
    new.qkv.weight.copy_(attention.qkv.weight[rows.to(weight.device)])  # (3 * nh_new * hs, H)
    new.qkv.bias.copy_(attention.qkv.bias[rows.to(weight.device)])
    new.out.weight.copy_(attention.out.weight[:, cols.to(weight.device)])  # (H, nh_new * hs)
    new.out.bias.copy_(attention.out.bias)
    return new


def prune_heads(model: nn.Module, heads: Mapping[int | str, Iterable[int]]) -> nn.Module:
    """Remove attention heads from `model` in place: {layer: [original head indices]} (transformers' old
    `model.prune_heads` contract). Heads already gone are ignored; the model's ModelConfig gains them in
    `pruned_heads`, so saving it writes a config that rebuilds these shapes. PruningError for a layer or head that
    does not exist or a layer that would lose its last head (nothing is changed then)."""
    core = encoder_of(model)
    cfg = core.config
    try:
        spec = normalize_pruned_heads({k: list(v) for k, v in heads.items()})
    except ValueError as exc:
        raise PruningError(f"heads to prune: {exc}") from None
    merged = normalize_pruned_heads(
        {
            **{k: v for k, v in cfg.pruned_heads.items()},
            **{k: sorted(set(cfg.pruned_heads.get(k, [])) | set(v)) for k, v in spec.items()},
        }
    )
    problems = pruned_heads_problems(merged, cfg.num_hidden_layers, cfg.num_attention_heads)
    if problems:
        raise PruningError(f"cannot prune {spec}: {'; '.join(problems)}")
    for key, gone in spec.items():
        layer = core.encoder.layers[int(key)]
        survivors = [h for h in kept_heads(layer.attention, cfg.num_attention_heads) if h not in set(gone)]
        if len(survivors) < layer.attention.num_heads:
            layer.attention = _pruned_copy(layer.attention, cfg, survivors)
    new_cfg = dataclasses.replace(cfg, pruned_heads=merged)
    for module in model.modules():  # the task model and its encoder share one config object
        if getattr(module, "config", None) is cfg:
            module.config = new_cfg
    return model


def restore_pruned_heads(model: nn.Module) -> nn.Module:
    """Give a freshly built model the smaller attention layers its config's `pruned_heads` describe (weights
    uninitialised: a checkpoint's are loaded next). ValueError for heads or layers that do not exist."""
    core = encoder_of(model)
    cfg = core.config
    pruned = normalize_pruned_heads(cfg.pruned_heads)
    problems = pruned_heads_problems(pruned, cfg.num_hidden_layers, cfg.num_attention_heads)
    if problems:
        raise ValueError(f"pruned_heads: {'; '.join(problems)}")
    for key, gone in pruned.items():
        layer = core.encoder.layers[int(key)]
        kept = [h for h in range(cfg.num_attention_heads) if h not in set(gone)]
        weight = layer.attention.qkv.weight
        layer.attention = PrunedAttention(cfg, kept).to(device=weight.device, dtype=weight.dtype)
    return model


def attention_parameters(model: nn.Module) -> int:
    """Parameters of the encoder's attention projections (what pruning shrinks)."""
    return sum(p.numel() for layer in encoder_of(model).encoder.layers for p in layer.attention.parameters())
