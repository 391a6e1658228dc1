"""``python -m bench.scaling``: see ``bench.scaling.run``."""

import sys

from bench.scaling.run import main

sys.exit(main())
