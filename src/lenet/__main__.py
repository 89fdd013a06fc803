"""`python -m lenet ...`, which is also how torchrun starts it: `torchrun --nproc-per-node N -m lenet train ...`."""

import sys

from .cli import main

sys.exit(main())
