"""bert2: a BERT framework written from scratch in PyTorch.

Importing the package is cheap (no torch): heavy modules are imported where they are used, so the TUI can draw
its first frame before torch loads.
"""

import os as _os

__version__ = "0.1.0"

# oneDNN caches one compiled primitive per input shape (1,024 by default), each holding its own buffers.
# Dynamic padding and a varying number of masked tokens give a new shape almost every step, so a CPU
# training process grew by ~5 MB a step (1.2 GB after 200 steps of BERT-Tiny) until the cache filled. A small
# cache keeps memory flat at no measured speed cost. It must be set before torch first uses oneDNN, hence here.
_os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "16")
