"""Phone numbers: every way a caller ID or a search box writes one maps to one E.164 key."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from onerpa.phone import format_national, normalize


@pytest.mark.parametrize(
    "raw",
    [
        "8 (499) 719-55-81",
        "+7 499 719 55 81",
        "+7 (499) 719-55-81",
        "74997195581",
        "84997195581",
        "4997195581",
        "+74997195581",
        "007 499 719 55 81",
        "  8 499 719-55-81  ",
        "8.499.719.55.81",
        b"+74997195581",
    ],
)
def test_every_writing_of_the_support_number_maps_to_one_key(raw: str | bytes) -> None:
    assert normalize(raw) == "+74997195581"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+7-916-123-45-67", "+79161234567"),
        ("89161234567", "+79161234567"),
        ("7 (916) 123-45-67", "+79161234567"),
        ("9161234567", "+79161234567"),
        ("8-800-555-35-35", "+78005553535"),
        ("+7 495 123-45-67", "+74951234567"),
    ],
)
def test_russian_mobile_and_toll_free_numbers_normalize(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+49 30 123456", "+4930123456"),
        ("0049 30 123456", "+4930123456"),
        ("+375 29 123-45-67", "+375291234567"),
        ("00375291234567", "+375291234567"),
        ("810 375 29 123-45-67", "+375291234567"),
        ("+1 212 555 0123", "+12125550123"),
    ],
)
def test_international_numbers_keep_their_country(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        None,
        "",
        "   ",
        "Anonymous",
        "anonymous",
        "Restricted",
        "unknown",
        "Unavailable",
        "123",
        "112",
        "abc",
        "8 499 ABC-55-81",
        "+7 499 719 55 81 ext 1",
        "\x00\x01\x02",
        "+74997195581\x00",
        "+7\t499\n719 55 81",
        "\u0660\u0668\u0664\u0669\u0669",  # Arabic-Indic digits, not ASCII ones
        "8" * 500,
        "+7 " + "9" * 497,
        "+7 000 000 00 00",
        "+7 499 719 55 8",
        b"\xff\xfe\xfd",
        b"+7499\xcf\xf0719",
    ],
)
def test_anything_that_is_not_a_number_leaves_the_caller_unidentified(
    raw: str | bytes | None,
) -> None:
    assert normalize(raw) is None


@given(st.one_of(st.text(max_size=600), st.binary(max_size=600), st.none()))
def test_normalize_never_raises(raw: str | bytes | None) -> None:
    result = normalize(raw)
    assert result is None or (result.startswith("+") and result[1:].isdigit())


@given(st.from_regex(r"\A9[0-9]{9}\Z"))
def test_a_normalized_key_normalizes_to_itself(national: str) -> None:
    key = normalize("8" + national)
    if key is not None:
        assert normalize(key) == key


@pytest.mark.parametrize(
    "raw",
    [
        "+7\u00a0499\u00a0719-55-81",  # no-break spaces
        "8\u2009(499)\u2009719-55-81",  # thin spaces
        "+7 499 719\u201155\u201181",  # non-breaking hyphens
        "+7 499 719\u201355\u201381",  # en dashes
        "\ufeff+74997195581",  # a byte-order mark left on a pasted value
    ],
)
def test_number_pasted_from_a_document_maps_to_the_same_key(raw: str) -> None:
    assert normalize(raw) == "+74997195581"


def test_search_box_input_uses_the_same_key_as_the_caller_id() -> None:
    assert normalize("499 719-55-81") == normalize("84997195581")


def test_format_national_groups_digits_for_people() -> None:
    assert format_national("+74997195581") == "+7 499 719-55-81"


def test_format_national_leaves_garbage_as_it_is() -> None:
    assert format_national("not a number") == "not a number"
