"""`python -m watcher.standins ROOT`: the stand-in builder under its first name, kept for the scripts that use it.

The builder lives in `watcher.testing.standins`.
"""

from __future__ import annotations

from .testing.standins import main

if __name__ == "__main__":
    raise SystemExit(main())
