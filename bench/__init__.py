"""SentinAI's benchmarks: scripts that print a table and write JSON under ``.reports/``; never timed tests.

Run from the repository root, one package per kind (see ``bench/README.md``): ``python -m bench.eval``,
``python -m bench.nab``, ``python -m bench.scaling``, ``python -m bench.scaling.predict_latency``,
``python -m bench.stack.{pipeline,load,loop,api_load}``.
"""

from pathlib import Path

# The repository root: reports go to ``.reports/``, scratch data to ``.bench/``, scenarios are read
# from ``scenarios/``, and the NAB data is looked for beside it unless ``--nab`` names its folder.
ROOT = Path(__file__).resolve().parent.parent
