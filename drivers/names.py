"""Names of things in hub.toml (relays, light circuits, loudspeaker zones, programmes): one rule for all of them.

Vietnamese names are compared in NFC: an editor that writes "đèn" decomposed (e + combining grave) must still
match the same name typed elsewhere. A name with leading/trailing spaces or control characters would never
match what a technician types, so it is refused with the reason.
"""

from __future__ import annotations

import unicodedata

MAX_NAME_LENGTH = 64


def normalise_name(value: str) -> str:
    return unicodedata.normalize("NFC", value)


def check_name(value: str, what: str = "name", max_length: int = MAX_NAME_LENGTH) -> str:
    """The NFC form of `value`, or ValueError saying what is wrong with it (`what`: "relay name", ...)."""
    value = normalise_name(value)
    if not value.strip():
        raise ValueError(f"a {what} must not be empty")
    if value != value.strip():
        raise ValueError(f"{what} {value!r} has leading or trailing spaces; the hub would never match it")
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
        raise ValueError(f"{what} {value!r} contains control characters")
    if len(value) > max_length:
        raise ValueError(f"{what} {value!r} is longer than {max_length} characters")
    return value
