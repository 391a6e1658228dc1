"""Kubernetes resource quantities ("1500m", "2", "512Mi", "1e9") parsed and printed."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIX: dict[str, Decimal] = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}
_QUANTITY = re.compile(r"^([+]?[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?$")
MI = 2**20
GI = 2**30


class InvalidQuantityError(ValueError):
    """Text the API server would reject as a quantity."""


def parse(value: str | int | float) -> Decimal:
    """The quantity's value in base units (cores or bytes)."""
    text = str(value).strip()
    match = _QUANTITY.match(text)
    if match is None:
        raise InvalidQuantityError(f"quantities must match the regular expression '{_QUANTITY.pattern}'")
    try:
        number = Decimal(match.group(1))
    except InvalidOperation as exc:
        raise InvalidQuantityError(f"invalid quantity {text!r}") from exc
    return number * _SUFFIX[match.group(2) or ""]


def millicores(value: str | int | float) -> int:
    """CPU quantity in millicores, rounded up like the API server does."""
    return int((parse(value) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def byte_count(value: str | int | float) -> int:
    return int(parse(value).to_integral_value(rounding="ROUND_CEILING"))


def format_cpu(millis: int) -> str:
    """The canonical form the API server echoes back: whole cores as "2", else "1500m"."""
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def format_memory(count: int) -> str:
    for suffix, unit in (("Gi", GI), ("Mi", MI), ("Ki", 2**10)):
        if count % unit == 0:
            return f"{count // unit}{suffix}"
    return str(count)


def format_usage_cpu(cores: float) -> str:
    """metrics-server style: nanocores ("123456789n")."""
    return f"{max(0, round(cores * 1e9))}n"


def format_usage_memory(count: int) -> str:
    """metrics-server style: kibibytes ("123456Ki")."""
    return f"{max(0, count) // 1024}Ki"
