"""``python -m sciml`` (and ``torchrun -m sciml train ...``): the ``sciml`` command."""

import sys

from .cli import main

sys.exit(main())
