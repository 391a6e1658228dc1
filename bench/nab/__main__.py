"""``python -m bench.nab``: see ``bench.nab.run``."""

from bench.nab.run import main

main()
