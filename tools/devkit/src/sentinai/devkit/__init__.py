"""SentinAI's development kit: the embedded nats-server, process-group helpers and test support.

Installed by ``make setup`` for `sentinai up`, the twin, the tests and the benchmarks; never by a
service image (each image installs ``libs/common`` and its own service only).
"""
