"""``python -m sentinai.collector``."""

from sentinai.collector.main import main

main()
