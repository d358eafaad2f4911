"""Allows ``python -m carbonshift``."""

from carbonshift.cli import main

raise SystemExit(main())
