"""Run the rca service: ``python -m sentinai.rca``."""

from sentinai.rca.main import main

main()
