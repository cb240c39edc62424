"""`python -m nbx` is `nbxc`."""

import sys

from .cli import main

sys.exit(main())
