"""`python -m bert2_tui [--config FILE]`."""

from .app import main

raise SystemExit(main())
