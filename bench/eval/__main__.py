"""``python -m bench.eval``: see ``bench.eval.run``."""

from bench.eval.run import main

main()
