"""Making a trained model smaller and faster: distillation (distill.py: a small student learns from a bert2
teacher's outputs and hidden states) and attention-head pruning (prune.py: the heads the loss depends on least are
removed for real, Michel et al. 2019).

Nothing heavy is imported here, so `import bert2.compress` (the TUI's checkpoint browser asks what can be
distilled or pruned) stays free of torch until a command needs it.
"""

from ..registry import PRETRAIN_TASKS

DISTILL_TEACHERS: tuple[str, ...] = (*PRETRAIN_TASKS, "classify")
"""Checkpoints a student can learn from: pretraining ones (masked-word distributions) and classifiers (label
distributions). The other tasks' outputs (tags per word, spans, generated text) have no distillation loss here."""
PRUNE_TASKS: tuple[str, ...] = (*PRETRAIN_TASKS, "classify", "ner", "qa-span")
"""Checkpoints bert2 prune handles: every task whose evaluation is one encoder pass. Generative QA has a decoder
with attention of its own, and its evaluation generates text (slow along a curve of many evaluations)."""
