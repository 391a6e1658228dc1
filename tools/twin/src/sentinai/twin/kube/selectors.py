"""Label selectors as list and watch requests send them."""

from __future__ import annotations

import functools
import re
from typing import Final

_SET_TERM: Final = re.compile(r"^\s*([^\s!=(),]+)\s+(in|notin)\s+\(([^)]*)\)\s*")


_TERM_SPLIT: Final = re.compile(r",(?![^(]*\))")  # a comma outside ``in (a,b)`` sets


@functools.lru_cache(maxsize=256)
def _selector_terms(selector: str) -> tuple[str, ...]:
    """The comma-joined terms of a selector (parsed once: collectors send the same one every poll)."""
    return tuple(t.strip() for t in _TERM_SPLIT.split(selector) if t.strip())


def matches(labels: dict[str, str], selector: str | None) -> bool:
    """Label selectors: ``k=v``, ``k==v``, ``k!=v``, ``k``, ``!k``, ``k in (a,b)``, ``k notin (a,b)``."""
    if not selector:
        return True
    for term in _selector_terms(selector):
        if (found := _SET_TERM.fullmatch(term)) is not None:
            values = {v.strip() for v in found.group(3).split(",")}
            # A missing label is "not in" any set.
            if (labels.get(found.group(1)) in values) != (found.group(2) == "in"):
                return False
        elif "!=" in term:
            key, value = (s.strip() for s in term.split("!=", 1))
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = (s.strip() for s in term.replace("==", "=").split("=", 1))
            if labels.get(key) != value:
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True
