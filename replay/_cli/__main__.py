"""``python -m replay._cli``: the ``replay`` command without its console script."""

from __future__ import annotations

import sys

from replay._cli import main

sys.exit(main())
