"""``make eval``: every scenario replayed through detector → rca → planner as pure functions, then scored.

``scenarios`` loads the scenario files, ``telemetry`` steps the twin and reads it as the collector
does, ``replay`` lets the services' pure cores decide, ``score`` scores against the ground truth,
``logs`` scores the labelled log-line corpus, ``run`` is the command (``python -m bench.eval``).
"""
