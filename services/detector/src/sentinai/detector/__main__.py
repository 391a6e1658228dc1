"""Run the detector: ``python -m sentinai.detector``."""

from sentinai.detector.main import main

main()
