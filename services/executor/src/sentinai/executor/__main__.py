"""Run the executor: ``python -m sentinai.executor``."""

from sentinai.executor.main import main

main()
