"""Benchmarks of running processes: ``pipeline`` (nats-server and one detector), and ``load``, ``loop``
and ``api_load``, which start the whole stack through the one ``sentinai up`` runner (``upstack``).

Each is run as ``python -m bench.stack.<name>``.
"""
