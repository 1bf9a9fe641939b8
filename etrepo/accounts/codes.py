"""Email confirmation codes: drawn with `secrets`, stored as hashes, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata


def generate_code(length: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(length))


def hash_code(code: str, salt: str, key: str = "") -> str:
    """An HMAC of the code, keyed by the portal's SECRET_KEY and salted with the request id.

    A 6-digit code has only 10**6 values: a plain hash in a database file that someone can
    read would give the code back in a second. Keyed, the stored value is useless without the
    key, which is not in the database. (The try limit is what protects against guessing online.)
    """
    return hmac.new(key.encode(), f"{salt}:{code}".encode(), hashlib.sha256).hexdigest()


def code_matches(code: str, salt: str, stored_hash: str, key: str = "") -> bool:
    candidate = hash_code(normalize_code(code), salt, key)
    return hmac.compare_digest(candidate.encode(), stored_hash.encode())


def normalize_code(code: str) -> str:
    """What people paste: spaces, dashes, full-width digits."""
    out = []
    for char in code.strip():
        if char in " -\t":
            continue
        digit = unicodedata.decimal(char, None)  # full-width and other Unicode digits -> ASCII
        out.append(str(digit) if digit is not None else char)
    return "".join(out)
