"""`python -m bert2 ...` (and `torchrun ... -m bert2 pretrain`)."""

import sys

from .cli import main

if __name__ == "__main__":  # data preparation's worker processes (spawn) import this module as __mp_main__
    sys.exit(main())
