"""`python -m lenet.cli ...`, the same command as `lenet` and `python -m lenet`."""

import sys

from . import main

sys.exit(main())
