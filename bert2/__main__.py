"""`python -m bert2 ...` (and `torchrun ... -m bert2 pretrain`)."""

import sys

from .cli import main

sys.exit(main())
