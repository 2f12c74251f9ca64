"""Salesforce record ids: 15-character base-62 ids plus the 3-character case-safe checksum."""

from __future__ import annotations

import re

_CHECKSUM_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_ID_PATTERN = re.compile(r"^[0-9A-Za-z]{15}(?:[0-9A-Za-z]{3})?$")


class MalformedId(ValueError):
    """The text cannot be a Salesforce id (wrong length or characters)."""


def checksum(id15: str) -> str:
    """The 3-character suffix that makes a 15-character id case-insensitively unique."""
    suffix = []
    for chunk_start in (0, 5, 10):
        bits = 0
        for position, char in enumerate(id15[chunk_start : chunk_start + 5]):
            if "A" <= char <= "Z":
                bits |= 1 << position
        suffix.append(_CHECKSUM_ALPHABET[bits])
    return "".join(suffix)


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


def _chunk_bits(chunk: str) -> str:
    return _CHECKSUM_ALPHABET[int(chunk[::-1].translate(_UPPER_AS_BITS), 2)]


def make_id(prefix: str, number: int, pod: str = "8d0") -> str:
    """An 18-character id: key prefix (3) + pod (3) + base-62 sequence number (9) + checksum (3)."""
    number, last = divmod(number, 62)
    pairs = []
    for _ in range(4):
        number, pair = divmod(number, 3844)
        pairs.append(_PAIRS[pair])
    id15 = prefix + pod + pairs[3] + pairs[2] + pairs[1] + pairs[0] + _BASE62[last]
    head = id15[:10]  # changes rarely for sequential numbers: cache its two checksum characters
    head_sum = _HEAD_SUMS.get(head)
    if head_sum is None:
        if len(_HEAD_SUMS) > 10_000:
            _HEAD_SUMS.clear()
        head_sum = _HEAD_SUMS[head] = _chunk_bits(head[:5]) + _chunk_bits(head[5:])
    return id15 + head_sum + _chunk_bits(id15[10:])


_HEAD_SUMS: dict[str, str] = {}
