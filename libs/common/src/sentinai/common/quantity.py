"""Kubernetes resource quantities ("500m", "2", "512Mi", "1e3", "250000n"): the one parser and printer.

The grammar is the API server's (``k8s.io/apimachinery`` ``resource.Quantity``): a signed decimal
number, then a binary suffix (``Ki`` … ``Ei``), a decimal exponent (``e3``, ``E-1``) or a decimal
suffix (``n u m k M G T P E``), or nothing. Surrounding whitespace is ignored. A JSON number is a
quantity too, as the API server takes one. Values are exact (``Decimal``) in base units: cores for
CPU, bytes for memory.
"""

from __future__ import annotations

import re
from decimal import ROUND_CEILING, Decimal
from typing import Final

KI: Final = 2**10
MI: Final = 2**20
GI: Final = 2**30

_BINARY: Final[dict[str, int]] = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL: Final[dict[str, int]] = {
    "n": -9,
    "u": -6,
    "m": -3,
    "k": 3,
    "M": 6,
    "G": 9,
    "T": 12,
    "P": 15,
    "E": 18,
}
_QUANTITY: Final = re.compile(
    r"(?P<num>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<bin>[KMGTPE]i)|[eE](?P<exp>[+-]?[0-9]+)|(?P<dec>[numkMGTPE]))?"
)


class InvalidQuantityError(ValueError):
    """Text the API server would reject as a quantity (or a resource amount below zero)."""


def parse(text: str | int | float) -> Decimal:
    """The quantity's exact value in base units (cores or bytes); ``InvalidQuantityError`` if it is none."""
    if isinstance(text, bool) or not isinstance(text, str | int | float):
        raise InvalidQuantityError(f"not a Kubernetes quantity: {text!r} (a string or a number is)")
    match = _QUANTITY.fullmatch(str(text).strip())
    if match is None:
        raise InvalidQuantityError(
            f"not a Kubernetes quantity: {text!r} "
            f"(quantities must match the regular expression '{_QUANTITY.pattern}')"
        )
    try:
        number = Decimal(match["num"])
        if match["bin"]:
            return number * Decimal(1024) ** _BINARY[match["bin"]]
        if match["exp"]:
            return number * Decimal(10) ** int(match["exp"])
        if match["dec"]:
            return number * Decimal(10) ** _DECIMAL[match["dec"]]
        return number
    except ArithmeticError as exc:  # an exponent beyond what Decimal holds
        raise InvalidQuantityError(f"not a Kubernetes quantity: {text!r} ({exc!r})") from exc


def parse_or_none(text: str | None) -> Decimal | None:
    """``parse(text)``, or ``None`` for ``None`` and anything that is not a quantity."""
    if text is None:
        return None
    try:
        return parse(text)
    except InvalidQuantityError:
        return None


def as_float(text: str) -> float:
    """The quantity in base units as a float: ``"250m"`` → 0.25 (cores), ``"512Mi"`` → 536870912.0 (bytes)."""
    return float(parse(text))


def millicores(value: str | int | float) -> int:
    """A CPU request or limit in millicores, rounded up as the API server rounds it; never negative."""
    return int((_amount(value) * 1000).to_integral_value(rounding=ROUND_CEILING))


def byte_count(value: str | int | float) -> int:
    """A memory request or limit in bytes, rounded up; never negative."""
    return int(_amount(value).to_integral_value(rounding=ROUND_CEILING))


def _amount(value: str | int | float) -> Decimal:
    number = parse(value)
    if number < 0:
        raise InvalidQuantityError(f"{value!r}: a resource amount must be greater than or equal to 0")
    return number


def same(a: str | None, b: str | None) -> bool:
    """Do two quantities mean the same amount ("2" and "2000m")? Text that is no quantity compares as text."""
    if a is None or b is None:
        return a == b
    x, y = parse_or_none(a), parse_or_none(b)
    return x == y if x is not None and y is not None else a == b


def format_cpu(millis: int) -> str:
    """The canonical form the API server echoes back: whole cores as "2", else "1500m"."""
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_memory(count: int) -> str:
    """Bytes in the largest binary unit that holds them whole: "4Gi", "512Mi", "3Ki", else plain bytes."""
    for suffix, unit in (("Gi", GI), ("Mi", MI), ("Ki", KI)):
        if count % unit == 0:
            return f"{count // unit}{suffix}"
    return str(count)


def cpu(vcpu: float) -> str:
    """The quantity that requests ``vcpu`` cores, to the millicore: 2.0 → "2", 1.5 → "1500m"."""
    return format_cpu(round(vcpu * 1000))


def memory(gib: float) -> str:
    """The quantity that holds ``gib`` GiB, to the MiB: 8.0 → "8Gi", 1.5 → "1536Mi"."""
    return format_memory(round(gib * 1024) * MI)


def format_usage_cpu(cores: float) -> str:
    """metrics-server style: nanocores ("123456789n")."""
    return f"{max(0, round(cores * 1e9))}n"


def format_usage_memory(count: int) -> str:
    """metrics-server style: kibibytes ("123456Ki")."""
    return f"{max(0, count) // KI}Ki"
