"""Email confirmation codes: drawn with `secrets`, stored as hashes, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import unicodedata


def generate_code(length: int) -> str:
    return "".join(secrets.choice("0123456789") for _ in range(length))


def hash_code(code: str, salt: str) -> str:
    """A keyed hash of the code. The salt (the request id) makes equal codes hash differently.

    A 6-digit code has only 10**6 values, so no hash protects it against an offline search;
    what protects it is the try limit. The hash keeps codes out of backups and logs.
    """
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def code_matches(code: str, salt: str, stored_hash: str) -> bool:
    candidate = hash_code(normalize_code(code), salt)
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
