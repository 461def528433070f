"""``python -m benchmarks``: the whole benchmark suite (``--help`` for the options)."""

import sys

from .suite import main

sys.exit(main())
