"""``python -m pytest_servebench.cli``: the ``servebench`` command."""

from __future__ import annotations

import sys

from . import main

sys.exit(main())
