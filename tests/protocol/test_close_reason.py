"""The overload close reason: literal strings both ways, the 123-byte limit at N and
N+1, truncation never inside a character, lenient parsing, and round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wsgate.protocol.close_reason import (
    MAX_CLOSE_REASON_BYTES,
    MAX_RETRY_AFTER_S,
    CloseHint,
    format_close_reason,
    parse_close_reason,
)


def test_the_documented_example() -> None:
    assert format_close_reason(12, "overloaded_queue_full") == (
        "retry-after=12; cause=overloaded_queue_full"
    )
    assert parse_close_reason("retry-after=12; cause=overloaded_queue_full") == CloseHint(
        12, "overloaded_queue_full"
    )


def test_without_a_hint_only_the_cause() -> None:
    assert format_close_reason(None, "shutting_down") == "cause=shutting_down"
    assert parse_close_reason("cause=shutting_down") == CloseHint(None, "shutting_down")


def test_an_empty_cause_leaves_only_the_hint() -> None:
    assert format_close_reason(3, "") == "retry-after=3"
    assert format_close_reason(3, " ; ") == "retry-after=3; cause=_"


@pytest.mark.parametrize(("given_s", "written"), [(-5, 0), (0, 0), (10**40, MAX_RETRY_AFTER_S)])
def test_retry_after_is_clamped(given_s: int, written: int) -> None:
    assert format_close_reason(given_s, "x") == f"retry-after={written}; cause=x"


def test_separators_and_controls_in_the_cause_cannot_forge_fields() -> None:
    reason = format_close_reason(5, "a; retry-after=0\r\nb")
    assert reason == "retry-after=5; cause=a_ retry-after_0__b"
    assert parse_close_reason(reason) == CloseHint(5, "a_ retry-after_0__b")


def test_a_cause_that_fits_exactly_is_kept_whole_and_one_more_byte_is_cut() -> None:
    prefix = len(b"retry-after=12; cause=")
    exact = "c" * (MAX_CLOSE_REASON_BYTES - prefix)
    assert len(format_close_reason(12, exact).encode()) == MAX_CLOSE_REASON_BYTES
    assert parse_close_reason(format_close_reason(12, exact)).cause == exact
    cut = format_close_reason(12, exact + "d")
    assert len(cut.encode()) == MAX_CLOSE_REASON_BYTES
    assert parse_close_reason(cut) == CloseHint(12, exact)


def test_truncation_never_splits_a_character() -> None:
    # "é" is two bytes: an odd room leaves one byte over, which must be dropped.
    room = MAX_CLOSE_REASON_BYTES - len(b"retry-after=1; cause=")
    reason = format_close_reason(1, "é" * 100)
    assert len(reason.encode()) == room - room % 2 + len(b"retry-after=1; cause=")
    assert reason.endswith("é")


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("RETRY-AFTER = 7 ;Cause=overloaded", CloseHint(7, "overloaded")),
        ("retry-after=7", CloseHint(7, None)),
        ("retry-after=soon; cause=x", CloseHint(None, "x")),
        ("retry-after=-1", CloseHint(None, None)),
        ("retry-after=1.5", CloseHint(None, None)),
        ("retry-after=\u0663", CloseHint(None, None)),  # an Arabic-Indic 3 is no HTTP digit
        ("retry-after=99999999999", CloseHint(MAX_RETRY_AFTER_S, None)),
        ("retry-after=1; retry-after=9", CloseHint(1, None)),  # the first wins
        ("going away", CloseHint(None, None)),
        ("", CloseHint(None, None)),
        ("cause=; retry-after=2", CloseHint(2, None)),
        ("region=eu; retry-after=4; cause=rate_limited", CloseHint(4, "rate_limited")),
    ],
)
def test_parsing_is_lenient(text: str, hint: CloseHint) -> None:
    assert parse_close_reason(text) == hint


@given(st.one_of(st.none(), st.integers(min_value=-10, max_value=10**12)), st.text())
def test_any_input_fits_the_limit(retry_after_s: int | None, cause: str) -> None:
    assert len(format_close_reason(retry_after_s, cause).encode()) <= MAX_CLOSE_REASON_BYTES


@given(
    st.one_of(st.none(), st.integers(min_value=0, max_value=MAX_RETRY_AFTER_S)),
    st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=60).filter(
        lambda s: ";" not in s and "=" not in s
    ),
)
def test_round_trip(retry_after_s: int | None, cause: str) -> None:
    hint = parse_close_reason(format_close_reason(retry_after_s, cause))
    assert hint == CloseHint(retry_after_s, cause or None)


@given(st.text())
def test_parsing_any_text_never_raises(text: str) -> None:
    hint = parse_close_reason(text)
    assert hint.retry_after_s is None or 0 <= hint.retry_after_s <= MAX_RETRY_AFTER_S
