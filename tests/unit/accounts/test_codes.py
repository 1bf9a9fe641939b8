"""Confirmation codes: random digits, forgiving about what people paste, compared safely."""

from __future__ import annotations

import hmac

import pytest

from etrepo.accounts import codes
from etrepo.accounts.codes import code_matches, generate_code, hash_code, normalize_code


@pytest.mark.parametrize("length", [4, 6, 8, 12])
def test_code_has_the_length_asked_and_only_ascii_digits(length):
    for _ in range(200):
        code = generate_code(length)
        assert len(code) == length
        assert code.isascii() and code.isdigit()


def test_codes_use_every_digit_and_differ():
    drawn = [generate_code(6) for _ in range(500)]
    assert set("".join(drawn)) == set("0123456789")
    assert len(set(drawn)) > 450  # 500 draws from a million: repeats are rare


@pytest.mark.parametrize(
    ("typed", "normal"),
    [
        ("123456", "123456"),
        (" 123 456 ", "123456"),
        ("123-456", "123456"),
        ("\t123456\n", "123456"),
        ("１２３４５６", "123456"),  # full-width, as typed on a CJK keyboard
        ("١٢٣٤٥٦", "123456"),  # Arabic-Indic digits
        ("12345a", "12345a"),  # a letter stays: it can never match
    ],
)
def test_normalize_code(typed, normal):
    assert normalize_code(typed) == normal


def test_code_matches_what_people_paste():
    stored = hash_code("042424", "req-1")
    for typed in ("042424", " 042 424 ", "042-424", "０４２４２４"):
        assert code_matches(typed, "req-1", stored), typed
    for typed in ("42424", "0424240", "042425", "", "04242a"):
        assert not code_matches(typed, "req-1", stored), typed


def test_the_same_code_of_another_request_does_not_match():
    assert not code_matches("042424", "req-2", hash_code("042424", "req-1"))


def test_stored_hash_does_not_hold_the_code():
    assert "042424" not in hash_code("042424", "req-1")


def test_comparison_is_constant_time(monkeypatch):
    calls = []
    real = hmac.compare_digest

    def spy(a, b):
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(codes.hmac, "compare_digest", spy)
    assert code_matches("123456", "r", hash_code("123456", "r"))
    assert not code_matches("654321", "r", hash_code("123456", "r"))
    assert len(calls) == 2


def test_the_stored_hash_is_useless_without_the_secret_key():
    """Someone who can read the database cannot search the 10**6 codes without the key."""
    stored = hash_code("123456", "r", "the-secret-key-of-the-portal")
    assert stored not in {hash_code(f"{n:06d}", "r") for n in range(123000, 124000)}
    assert code_matches("123456", "r", stored, "the-secret-key-of-the-portal")
    assert not code_matches("123456", "r", stored, "another-key-entirely")
