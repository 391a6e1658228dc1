"""Run the predictor: ``python -m sentinai.predictor``."""

from sentinai.predictor.main import main

main()
