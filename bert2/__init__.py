"""bert2: a BERT framework written from scratch in PyTorch.

Importing the package is cheap (no torch): heavy modules are imported where they are used, so the TUI can draw
its first frame before torch loads.
"""

__version__ = "0.1.0"
