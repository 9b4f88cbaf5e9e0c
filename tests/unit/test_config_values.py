"""GOST's value rules (config/values.py): Go's ParseBool, Atoi and ParseDuration.

GOST reads metadata with Go's strconv and time.ParseDuration, and reads a
duration that is not a Go duration as a bare number of seconds ("30" = 30 s).
A gostfast config must mean what the same GOST config means, so these tests
pin the Go rules, including what Go rejects.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gostfast.config import values

# ---------------------------------------------------------------- bool


@pytest.mark.parametrize("text", ["1", "t", "T", "TRUE", "true", "True"])
def test_bool_true_spellings_of_go(text: str) -> None:
    assert values.parse_bool(text) is True


@pytest.mark.parametrize("text", ["0", "f", "F", "FALSE", "false", "False"])
def test_bool_false_spellings_of_go(text: str) -> None:
    assert values.parse_bool(text) is False


@pytest.mark.parametrize("value", [True, False])
def test_bool_yaml_bool_passes_through(value: bool) -> None:
    assert values.parse_bool(value) is value


def test_bool_yaml_int_zero_and_one() -> None:
    assert values.parse_bool(1) is True
    assert values.parse_bool(0) is False


@pytest.mark.parametrize(
    "value", ["yes", "no", "on", "off", "TrUe", " true", "true ", "", "30s", 2, -1, 1.0, None, []]
)
def test_bool_rejects_what_go_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="expected a boolean"):
        values.parse_bool(value)


def test_bool_error_shows_the_value() -> None:
    # the ws keepalive pitfall from the spec: keepAlive=30s is not a bool
    with pytest.raises(ValueError, match=r"'30s'"):
        values.parse_bool("30s")


# ---------------------------------------------------------------- int


@pytest.mark.parametrize(
    "value,expected",
    [("0", 0), ("42", 42), ("+7", 7), ("-7", -7), ("65535", 65535), (128, 128), (-3, -3)],
)
def test_int_parses_decimal_text_and_yaml_ints(value: object, expected: int) -> None:
    assert values.parse_int(value) == expected


@pytest.mark.parametrize(
    "value", ["abc", "", "1.5", "0x10", "1e3", "1_000", "12abc", "--1", True, False, 1.5, None, {}]
)
def test_int_rejects_non_integers(value: object) -> None:
    with pytest.raises(ValueError, match="expected an integer"):
        values.parse_int(value)


def test_int_error_shows_the_value() -> None:
    with pytest.raises(ValueError, match=r"got 'abc'"):
        values.parse_int("abc")


# ---------------------------------------------------------------- duration


@pytest.mark.parametrize(
    "text,seconds",
    [
        ("1m30s", 90.0),
        ("500ms", 0.5),
        ("30", 30.0),  # GOST: not a Go duration -> bare seconds
        ("0", 0.0),
        ("1.5h", 5400.0),
        ("10s", 10.0),
        ("2h45m", 9900.0),
        ("1h2m3s", 3723.0),
        ("1h1m1s1ms", 3661.001),
        ("250us", 250e-6),
        ("250µs", 250e-6),  # U+00B5 micro sign
        ("250μs", 250e-6),  # U+03BC greek mu
        ("100ns", 100e-9),
        (".5s", 0.5),
        ("1.s", 1.0),
        ("1.25m", 75.0),
        ("+5s", 5.0),
        ("-1.5h", -5400.0),
        ("-30", -30.0),
        ("8760h", 8760 * 3600.0),
    ],
)
def test_duration_go_syntax_and_bare_seconds(text: str, seconds: float) -> None:
    assert values.parse_duration(text) == pytest.approx(seconds, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("value,seconds", [(30, 30.0), (0, 0.0), (1.5, 1.5)])
def test_duration_yaml_number_is_seconds(value: float, seconds: float) -> None:
    assert values.parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value",
    [
        "soon",
        "1h30",  # Go: missing unit after the last number
        "5 s",
        "1e3s",
        "1d",  # Go has no day unit
        "s",
        ".s",
        "-",
        "+",
        "1.5.3s",
        "1s2",
        "30s!",
        "ms500",
        True,
        None,
        [],
    ],
)
def test_duration_rejects_what_go_rejects(value: object) -> None:
    with pytest.raises(ValueError, match="expected a duration like 10s or 1m30s"):
        values.parse_duration(value)


def test_duration_error_shows_the_value() -> None:
    with pytest.raises(ValueError, match=r"got 'soon'"):
        values.parse_duration("soon")


@pytest.mark.parametrize("value", ["", "   "], ids=["empty", "blank"])
def test_duration_empty_text_is_a_value_error(value: str) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        values.parse_duration(value)


@settings(max_examples=300, deadline=None)
@given(
    h=st.integers(0, 99),
    m=st.integers(0, 59),
    s=st.integers(0, 59),
    ms=st.integers(0, 999),
    sign=st.sampled_from(["", "+", "-"]),
)
def test_duration_components_add_up(h: int, m: int, s: int, ms: int, sign: str) -> None:
    text = sign + "".join(
        f"{v}{unit}" for v, unit in ((h, "h"), (m, "m"), (s, "s"), (ms, "ms")) if v
    )
    if text in ("", "+", "-"):
        text += "0"
    expected = h * 3600 + m * 60 + s + ms / 1000
    got = values.parse_duration(text)
    assert got == pytest.approx(-expected if sign == "-" else expected, abs=1e-9)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**6))
def test_duration_bare_integer_text_is_seconds(n: int) -> None:
    assert values.parse_duration(str(n)) == float(n)


# ---------------------------------------------------------------- str / map / format


def test_str_accepts_scalars_and_rejects_structures() -> None:
    assert values.parse_str("x") == "x"
    assert values.parse_str(8080) == "8080"
    assert values.parse_str(1.5) == "1.5"
    for bad in (True, None, [1], {"a": 1}):
        with pytest.raises(ValueError, match="expected a string"):
            values.parse_str(bad)


def test_map_is_string_to_string() -> None:
    assert values.parse_map({"X-A": "1", "N": 2}) == {"X-A": "1", "N": "2"}
    with pytest.raises(ValueError, match="expected a map"):
        values.parse_map("X-A: 1")
    with pytest.raises(ValueError, match="expected a string"):
        values.parse_map({"X-A": [1]})


@pytest.mark.parametrize(
    "seconds,text",
    [(0, "0s"), (10, "10s"), (90, "90s"), (120, "2m"), (3600, "1h"), (0.5, "500ms")],
)
def test_format_duration_prints_go_style(seconds: float, text: str) -> None:
    assert values.format_duration(seconds) == text
    assert values.parse_duration(text) == seconds
