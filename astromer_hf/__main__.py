"""`python -m astromer_hf` runs the `astromer` command."""

import sys

from .cli import main

sys.exit(main())
