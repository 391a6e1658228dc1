"""Run the api: ``python -m sentinai.api``."""

from sentinai.api.main import main

main()
