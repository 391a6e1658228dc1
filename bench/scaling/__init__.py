"""``make bench-scaling`` and ``make bench-predict``: vCPU scaling policies replayed over demand traces.

``traces`` loads and splits the demand traces, ``contenders`` holds the policies compared (SentinAI's
live predictor and planner among them), ``run`` replays and scores them (``python -m bench.scaling``),
``predict_latency`` times the live decision per history size (``python -m bench.scaling.predict_latency``).
"""
