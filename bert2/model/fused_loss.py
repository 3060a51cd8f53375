"""Vocabulary projection and cross-entropy in one autograd node, with the gradient formed in the forward pass.

Why: for BERT-Tiny at vocabulary 30,522 the (N x V) logits of the masked rows are ~75 MB, and autograd's
`linear -> log_softmax -> nll_loss` walks that buffer about ten times a step (log_softmax forward and backward, a
zero-filled nll gradient, a scatter, a copy), which profiled at ~60 ms of a 240 ms step on two cores — more than
the encoder's matmuls. The loss is a sum of per-row terms whose gradient with respect to the logits is simply
`softmax - onehot`, so it can be built right after the logits are computed: one softmax kernel (each row of
30,522 fits in a core's cache, so the buffer is read and written once; max, exp, sum and divide as separate ops
walked it five times from memory, ~10 ms more a step) and a scatter of -1 at the labels. The backward pass is then
just the two matmuls (and a column sum for the bias) that any linear layer needs. The buffer kept for the backward
pass is the same size as the logits autograd would keep anyway.

Used only where it is exact and worth it: training steps in fp32 (under autocast, the normal path keeps
transformers' numerics); evaluation and inference still get real logits.
"""

from __future__ import annotations

import torch


class _LinearCrossEntropySum(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx,
        h: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        target: torch.Tensor,
        compute_dtype: torch.dtype,
    ) -> torch.Tensor:
        # h (N, H), weight (V, H), bias (V,), target (N,) class indices, all valid. The two matmuls run in
        # compute_dtype (bf16 in a bf16 step: the weights stay fp32, cast here); everything after them in fp32.
        ctx.h_dtype = h.dtype
        h, weight = h.to(compute_dtype), weight.to(compute_dtype)
        if compute_dtype == torch.float32:
            logits = torch.addmm(bias, h, weight.t()) if bias is not None else h @ weight.t()  # (N, V)
        else:
            logits = (h @ weight.t()).float()  # (N, V) fp32 from a bf16 matmul
            if bias is not None:
                logits += bias.float()
        picked = logits.gather(1, target[:, None])  # (N, 1) logit of the true class
        row_max = logits.amax(dim=1, keepdim=True)  # (N, 1)
        # One softmax kernel: it reads each row once into cache (max, exp-sum, scale) and writes it once, where
        # max / sub / exp / sum / div as separate ops walked the whole (N, V) buffer five times from memory.
        grad = torch.softmax(logits, dim=1)  # (N, V)
        del logits
        p_true = grad.gather(1, target[:, None])  # (N, 1)
        # -log p_true is the row's cross-entropy exactly; a probability below fp32's smallest normal (loss > 87)
        # would lose digits, so such a row reports max_j l_j - l_y, the loss without its log-sum term (>= 0)
        rows = torch.maximum(-p_true.clamp_min(torch.finfo(grad.dtype).tiny).log(), row_max - picked)
        loss = rows.sum()
        grad.scatter_add_(1, target[:, None], torch.full_like(picked, -1.0))  # softmax - onehot = d loss / d logits
        correct = (picked >= row_max).sum()  # () rows whose label has the top logit (ties count as right)
        ctx.has_bias = bias is not None
        ctx.save_for_backward(grad, h, weight)
        ctx.mark_non_differentiable(correct)
        return loss, correct

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor, _grad_correct: torch.Tensor | None = None):
        grad, h, weight = ctx.saved_tensors
        g = grad.to(h.dtype)  # the matmuls in the forward's compute dtype
        # Scale the small results, not the (N, V) buffer: grad_loss is a scalar.
        grad_h = ((g @ weight) * grad_loss).to(ctx.h_dtype) if ctx.needs_input_grad[0] else None  # (N, H)
        grad_w = ((g.t() @ h).float() * grad_loss) if ctx.needs_input_grad[1] else None  # (V, H) fp32 master
        grad_b = grad.sum(0) * grad_loss if ctx.has_bias and ctx.needs_input_grad[2] else None  # (V,)
        return grad_h, grad_w, grad_b, None, None


def linear_cross_entropy_sum(
    h: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    target: torch.Tensor,
    compute_dtype: torch.dtype = torch.float32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum_i cross_entropy(h_i @ weight.T + bias, target_i), rows whose argmax is target_i) without keeping the
    logits; the count comes for free from the row maxima the loss needs anyway. `compute_dtype` bfloat16: the
    projection's matmuls in bf16 (2-3x faster on a CPU with bf16 instructions), the softmax and the loss in fp32.

    target holds at least one row and no -100 (the model keeps the reference path for a batch without masks).
    """
    with torch.autocast(h.device.type, enabled=False):  # the dtypes above are this function's own choice
        return _LinearCrossEntropySum.apply(h, weight, bias, target, compute_dtype)
