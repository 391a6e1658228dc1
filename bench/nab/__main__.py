"""``python -m bench.nab``: see ``bench.nab.run``; exits 1 when the scorer check fails."""

import sys

from bench.nab.run import main

sys.exit(0 if main()["scorer_check_pass"] else 1)
