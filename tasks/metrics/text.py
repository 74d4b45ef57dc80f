"""Shared text helpers for the generation metrics."""

from __future__ import annotations

import unicodedata


def as_text(value) -> str:
    """A prediction or reference as a string (None -> "")."""
    return "" if value is None else str(value)


def content_chars(text: str) -> list[str]:
    """NFKC-normalised, lower-cased characters without whitespace and punctuation."""
    text = unicodedata.normalize("NFKC", as_text(text)).lower()
    return [c for c in text if not c.isspace() and not unicodedata.category(c).startswith("P")]
