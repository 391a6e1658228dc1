"""Where ``Executor`` used to live, kept for importers of the old path (``sentinai asyncapi``).

The executor's modules now: ``service`` (the use case), ``effects`` (the once-only record),
``patching`` and ``verify`` (the change), ``attempt`` (its events), ``ports``.
"""

from sentinai.executor.service import Executor

__all__ = ["Executor"]
