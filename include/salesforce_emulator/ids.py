"""Salesforce record ids: 15-character base-62 ids plus the 3-character case-safe checksum."""

from __future__ import annotations

import re

_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_PATTERN = re.compile(r"^[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?$")


class MalformedId(ValueError):
    """The text cannot be a Salesforce id (wrong length or characters)."""


def checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character id (of base-62 digits) case-insensitively unique: per
    chunk of five characters, the bits of its upper-case letters (bit 0: the first) as one letter."""
    return _chunk_bits(id15[:5]) + _chunk_bits(id15[5:10]) + _chunk_bits(id15[10:])


def to_18(record_id: str) -> str:
    """Normalise a 15- or 18-character id to its 18-character form (as Salesforce does on input)."""
    if not isinstance(record_id, str) or not _ID_PATTERN.match(record_id):
        raise MalformedId(record_id)
    id15 = record_id[:15]
    return id15 + checksum(id15)


def is_id(text: object) -> bool:
    return isinstance(text, str) and bool(_ID_PATTERN.match(text))


_PAIRS = [a + b for a in _BASE62 for b in _BASE62]  # base-62 digit pairs, for speed
_UPPER_AS_BITS = str.maketrans({c: ("1" if "A" <= c <= "Z" else "0") for c in _BASE62})
# checksum bits of a digit pair (bit 0: its first character is upper case) and of one digit
_PAIR_BITS = [int(pair[::-1].translate(_UPPER_AS_BITS), 2) for pair in _PAIRS]
_DIGIT_BITS = [int(char.translate(_UPPER_AS_BITS)) for char in _BASE62]
_LOW_DIGITS = 62**5  # the last five digits form the last checksum chunk


def _chunk_bits(chunk: str) -> str:
    return _CHECKSUM_ALPHABET[int(chunk[::-1].translate(_UPPER_AS_BITS), 2)]


def make_id(prefix: str, number: int, pod: str = "8d0") -> str:
    """An 18-character id: key prefix (3) + pod (3) + base-62 sequence number (9) + checksum (3)."""
    high, low = divmod(number, _LOW_DIGITS)
    # the first ten characters change rarely for sequential numbers: cache them with their checksum characters
    head = _HEADS.get((prefix, pod, high))
    if head is None:
        if len(_HEADS) > 10_000:
            _HEADS.clear()
        upper, lower = divmod(high % 3844**2, 3844)
        text = prefix + pod + _PAIRS[upper] + _PAIRS[lower]
        head = _HEADS[(prefix, pod, high)] = (text, _chunk_bits(text[:5]) + _chunk_bits(text[5:]))
    rest, last = divmod(low, 62)
    upper, lower = divmod(rest, 3844)
    tail_bits = _PAIR_BITS[upper] | _PAIR_BITS[lower] << 2 | _DIGIT_BITS[last] << 4
    return head[0] + _PAIRS[upper] + _PAIRS[lower] + _BASE62[last] + head[1] + _CHECKSUM_ALPHABET[tail_bits]


_HEADS: dict[tuple[str, str, int], tuple[str, str]] = {}
