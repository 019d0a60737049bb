"""``python -m harness`` (also what ``torchrun -m harness`` / ``accelerate launch -m harness`` run)."""

import sys

from harness.cli import main

sys.exit(main())
