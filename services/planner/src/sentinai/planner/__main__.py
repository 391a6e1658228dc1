"""Run the planner: ``python -m sentinai.planner``."""

from sentinai.planner.main import main

main()
