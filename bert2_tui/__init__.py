"""bert2-tui: the Textual workbench of bert2 (config, training, checkpoints, playground).

Importing this package is cheap: torch, transformers and the trainer are imported inside thread workers when a job
or a prediction first needs them, so the first frame appears at once.
"""

import time

STARTED = time.perf_counter()
"""When the package was first imported: the start-up measurement counts from here (and from process start)."""

__all__ = ["__version__", "STARTED"]
__version__ = "0.1.0"
