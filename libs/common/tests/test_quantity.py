"""Kubernetes quantities: one parser and printer for the collector, the executor and the twin.

Each block pins what one of the three former parsers answered (the collector's ``parse_quantity``,
the executor's ``quantity``/``cpu_quantity``/``memory_quantity``/``_same_quantity``, the twin's
``quantity`` module), so their callers get the same answers from this one. The last block lists
where they disagreed with each other and what the shared grammar (the API server's) decides.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from sentinai.common import quantity
from sentinai.common.quantity import GI, KI, MI, InvalidQuantityError

# ---- what all three read the same ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("500m", Decimal("0.5"), id="millicores"),
        pytest.param("2", Decimal(2), id="whole-cores"),
        pytest.param("1.5", Decimal("1.5"), id="fraction"),
        pytest.param(".5", Decimal("0.5"), id="leading-dot"),
        pytest.param("250000n", Decimal("0.00025"), id="nanocores"),
        pytest.param("500u", Decimal("0.0005"), id="microcores"),
        pytest.param("1Gi", Decimal(GI), id="gibibytes"),
        pytest.param("512Mi", Decimal(512 * MI), id="mebibytes"),
        pytest.param("123456Ki", Decimal(123456 * KI), id="kibibytes"),
        pytest.param("1k", Decimal(1000), id="kilo"),
        pytest.param("1M", Decimal(10**6), id="mega-not-milli"),
        pytest.param("2T", Decimal(2 * 10**12), id="tera"),
        pytest.param("0", Decimal(0), id="zero"),
        pytest.param(" 2 ", Decimal(2), id="surrounding-space"),
    ],
)
def test_a_quantity_is_read_as_every_former_parser_read_it(text: str, value: Decimal) -> None:
    assert quantity.parse(text) == value
    assert quantity.parse_or_none(text) == value
    assert quantity.as_float(text) == float(value)


@pytest.mark.parametrize(
    "text", ["", "m", ".", "abc", "1.2.3", "12Mb", "1 Gi", "0x10", "1K", "1ki", "12 cores", "Gi"]
)
def test_what_no_former_parser_read_is_no_quantity(text: str) -> None:
    with pytest.raises(InvalidQuantityError, match="not a Kubernetes quantity"):
        quantity.parse(text)
    assert quantity.parse_or_none(text) is None


def test_the_error_names_the_text_and_the_grammar() -> None:
    with pytest.raises(ValueError, match=r"'12 cores'.*regular expression") as caught:
        quantity.parse("12 cores")
    assert isinstance(caught.value, InvalidQuantityError)


# ---- the collector: base units as floats --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("250m", 0.25, id="millicores"),
        pytest.param("1234567n", 0.001234567, id="nanocores-from-metrics-api"),
        pytest.param("1G", 1e9, id="decimal-giga"),
        pytest.param("128M", 128e6, id="decimal-mega"),
        pytest.param("1E", 1e18, id="exa-suffix"),
        pytest.param("1P", 1e15, id="peta-suffix"),
        pytest.param("1Pi", float(2**50), id="pebibytes"),
        pytest.param("1e3", 1000.0, id="exponent"),
        pytest.param("1E3", 1000.0, id="capital-exponent"),
        pytest.param("1e+3", 1000.0, id="signed-exponent"),
        pytest.param("12E-1", 1.2, id="negative-exponent"),
        pytest.param("1.5e3", 1500.0, id="fraction-with-exponent"),
        pytest.param("+1", 1.0, id="plus-sign"),
        pytest.param("-1", -1.0, id="minus-sign"),
        pytest.param("1.", 1.0, id="trailing-dot"),
    ],
)
def test_the_collector_reads_base_units_as_floats(text: str, expected: float) -> None:
    assert quantity.as_float(text) == expected


# ---- the executor: exact values, None when not understood, comparison by value -------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("500m", Decimal("0.500"), id="millicores"),
        pytest.param("8Gi", Decimal(8 * GI), id="gibibytes"),
        pytest.param("", None, id="empty"),
        pytest.param(None, None, id="absent"),
        pytest.param("lots", None, id="garbage"),
        pytest.param("1.2.3", None, id="two-dots"),
    ],
)
def test_the_executor_gets_none_for_what_is_no_quantity(text: str | None, expected: Decimal | None) -> None:
    assert quantity.parse_or_none(text) == expected


@pytest.mark.parametrize(
    ("a", "b", "same"),
    [
        pytest.param("2", "2000m", True, id="cores-and-millicores"),
        pytest.param("1Gi", "1024Mi", True, id="gibibyte-and-mebibytes"),
        pytest.param("2", "2.0", True, id="trailing-zero"),
        pytest.param("1Gi", "1G", False, id="binary-is-not-decimal"),
        pytest.param("abc", "abc", True, id="same-garbage-as-text"),
        pytest.param("abc", "ABC", False, id="other-garbage-as-text"),
        pytest.param("1", "abc", False, id="quantity-and-garbage"),
        pytest.param(None, None, True, id="both-absent"),
        pytest.param(None, "1", False, id="one-absent"),
    ],
)
def test_the_executor_compares_quantities_by_value(a: str | None, b: str | None, same: bool) -> None:
    assert quantity.same(a, b) is same
    assert quantity.same(b, a) is same


@pytest.mark.parametrize(
    ("vcpu", "text"),
    [
        pytest.param(2.0, "2", id="whole"),
        pytest.param(1.5, "1500m", id="fraction"),
        pytest.param(0.25, "250m", id="quarter"),
        pytest.param(1.0004, "1", id="rounded-to-the-millicore"),
        pytest.param(16.0, "16", id="large"),
    ],
)
def test_the_executor_asks_for_cpu_to_the_millicore(vcpu: float, text: str) -> None:
    assert quantity.cpu(vcpu) == text


@pytest.mark.parametrize(
    ("gib", "text"),
    [
        pytest.param(8.0, "8Gi", id="whole"),
        pytest.param(1.5, "1536Mi", id="fraction"),
        pytest.param(12.25, "12544Mi", id="quarter"),
        pytest.param(0.0001, "0Gi", id="rounded-to-the-mebibyte"),
    ],
)
def test_the_executor_asks_for_memory_to_the_mebibyte(gib: float, text: str) -> None:
    assert quantity.memory(gib) == text


@pytest.mark.parametrize("vcpu", [0.25, 0.5, 1.0, 1.5, 2.0, 3.75, 4.0, 8.0, 12.5])
def test_what_the_executor_asks_for_reads_back_as_the_same_amount(vcpu: float) -> None:
    assert quantity.as_float(quantity.cpu(vcpu)) == vcpu
    assert quantity.as_float(quantity.memory(vcpu)) == vcpu * GI


# ---- the twin: rounded-up resource amounts, API-server forms ------------------------------------


@pytest.mark.parametrize(
    ("value", "millis"),
    [
        pytest.param("2", 2000, id="cores"),
        pytest.param("2000m", 2000, id="millicores"),
        pytest.param("1500m", 1500, id="part-cores"),
        pytest.param("0.5", 500, id="fraction"),
        pytest.param("250000000n", 250, id="nanocores"),
        pytest.param("1234567n", 2, id="rounded-up"),
        pytest.param(2, 2000, id="json-integer"),
        pytest.param(1.5, 1500, id="json-float"),
    ],
)
def test_the_twin_reads_cpu_in_millicores_rounded_up(value: str | int | float, millis: int) -> None:
    assert quantity.millicores(value) == millis


@pytest.mark.parametrize(
    ("value", "count"),
    [
        pytest.param("512Mi", 512 * MI, id="mebibytes"),
        pytest.param("1G", 10**9, id="decimal-giga"),
        pytest.param("1.5", 2, id="rounded-up"),
        pytest.param("500m", 1, id="milli-bytes-rounded-up"),
    ],
)
def test_the_twin_reads_memory_in_bytes_rounded_up(value: str, count: int) -> None:
    assert quantity.byte_count(value) == count


@pytest.mark.parametrize(
    ("count", "text"),
    [
        pytest.param(4 * GI, "4Gi", id="gibibytes"),
        pytest.param(512 * MI, "512Mi", id="mebibytes"),
        pytest.param(3 * KI, "3Ki", id="kibibytes"),
        pytest.param(1000, "1000", id="bytes"),
    ],
)
def test_the_twin_prints_memory_in_the_largest_whole_unit(count: int, text: str) -> None:
    assert quantity.format_memory(count) == text


def test_the_twin_prints_what_the_api_server_and_metrics_server_print() -> None:
    assert quantity.format_cpu(2000) == "2"
    assert quantity.format_cpu(1500) == "1500m"
    assert quantity.format_usage_cpu(0.85) == "850000000n"
    assert quantity.format_usage_cpu(-0.1) == "0n"
    assert quantity.format_usage_memory(123456 * KI + 5) == "123456Ki"
    assert quantity.format_usage_memory(-1) == "0Ki"


# ---- where the former parsers disagreed: the API server's grammar decides -----------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        pytest.param("1e3", Decimal(1000), id="exponent-the-executor-did-not-read"),
        pytest.param("+1", Decimal(1), id="plus-sign-the-executor-did-not-read"),
        pytest.param("2P", Decimal(2 * 10**15), id="peta-the-executor-did-not-read"),
        pytest.param("1Ei", Decimal(2**60), id="exbibytes-the-executor-did-not-read"),
        pytest.param("1.", Decimal(1), id="trailing-dot-the-twin-did-not-read"),
        pytest.param("-1", Decimal(-1), id="minus-sign-the-twin-did-not-read"),
    ],
)
def test_the_api_servers_grammar_reads_what_one_former_parser_did_not(text: str, value: Decimal) -> None:
    assert quantity.parse(text) == value


def test_an_exponent_with_a_suffix_is_no_quantity_though_the_twin_read_it() -> None:
    with pytest.raises(InvalidQuantityError):
        quantity.parse("1e3Mi")


def test_a_json_number_is_a_quantity_though_the_collector_refused_one() -> None:
    assert quantity.parse(2) == Decimal(2)
    assert quantity.parse(1e-7) == Decimal("1e-7")


@pytest.mark.parametrize("value", [True, None, float("inf"), float("nan")], ids=str)
def test_no_other_value_is_a_quantity(value: object) -> None:
    with pytest.raises(InvalidQuantityError):
        quantity.parse(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["-1", "-500m", -2], ids=str)
def test_a_resource_amount_below_zero_is_refused(value: str | int) -> None:
    with pytest.raises(InvalidQuantityError, match="greater than or equal to 0"):
        quantity.millicores(value)
    with pytest.raises(InvalidQuantityError, match="greater than or equal to 0"):
        quantity.byte_count(value)


def test_an_exponent_beyond_decimals_reach_is_a_clear_error() -> None:
    with pytest.raises(InvalidQuantityError, match="not a Kubernetes quantity"):
        quantity.parse("1e999999999")
