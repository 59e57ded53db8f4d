"""User codes of the device grant (RFC 8628 §6.1, §5.1): alphabet, length, display, and lenient entry."""

from __future__ import annotations

import pytest

from tokenward.protocol.device import (
    USER_CODE_ALPHABET,
    display_user_code,
    new_user_code,
    normalize_user_code,
)


def test_alphabet_is_the_twenty_consonants_without_vowels_or_look_alikes() -> None:
    assert USER_CODE_ALPHABET == "BCDFGHJKLMNPQRSTVWXZ" and len(set(USER_CODE_ALPHABET)) == 20
    assert not set("AEIOUY01") & set(USER_CODE_ALPHABET)


def test_new_user_codes_are_eight_alphabet_letters_and_spread_over_the_alphabet() -> None:
    codes = [new_user_code() for _ in range(500)]
    assert all(len(c) == 8 and set(c) <= set(USER_CODE_ALPHABET) for c in codes)
    assert set("".join(codes)) == set(USER_CODE_ALPHABET)
    assert len(set(codes)) == len(codes)


def test_display_splits_the_code_into_two_groups_of_four() -> None:
    assert display_user_code("BCDFGHJK") == "BCDF-GHJK"


@pytest.mark.parametrize("typed", ["BCDF-GHJK", "bcdf-ghjk", "BCDFGHJK", "bcdf ghjk", " Bcdf-gHjk ", "B-C-D-F-G-H-J-K"])
def test_entry_ignores_case_hyphens_and_spaces(typed: str) -> None:
    assert normalize_user_code(typed) == "BCDFGHJK"


@pytest.mark.parametrize("typed", ["", "BCDF-GHJ", "BCDF-GHJKL", "BCDF-GHJA", "BCDF-GHJ0", "BCDF_GHJK",
                                   "\uff22\uff23\uff24\uff26-\uff27\uff28\uff2a\uff2b", "B" * 65, "BCDF\x00GHJK"])
def test_entry_is_malformed_for_other_letters_or_lengths(typed: str) -> None:
    assert normalize_user_code(typed) is None
