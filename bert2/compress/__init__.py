"""Making a trained model smaller and faster: distillation (distill.py: a small student learns from a bert2
teacher's outputs and hidden states) and attention-head pruning (prune.py: the heads the loss depends on least are
removed for real, Michel et al. 2019).

Nothing is imported here, so `import bert2.compress` stays free of torch until a command needs it.
"""
