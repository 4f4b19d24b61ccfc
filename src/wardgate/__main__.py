"""python -m wardgate: the same CLI."""

import sys

from wardgate.cli import main

sys.exit(main())
