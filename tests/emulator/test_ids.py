"""Salesforce id checksums (pure)."""

from __future__ import annotations

import pytest

from include.salesforce_emulator.ids import MalformedId, make_id, to_18


def test_checksum_matches_salesforce_example():
    assert to_18("001A0000006Vm9r") == "001A0000006Vm9rIAC"


def test_made_ids_have_prefix_and_valid_checksum():
    record_id = make_id("00Q", 123456789)
    assert record_id.startswith("00Q") and len(record_id) == 18 and to_18(record_id[:15]) == record_id


@pytest.mark.parametrize("number", [0, 61, 62, 3843, 3844, 62**5 - 1, 62**5, 62**9 - 1])
def test_made_ids_are_base62_numbers_with_their_checksum(number):
    record_id = make_id("00Q", number, pod="Dm0")
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    assert record_id[:6] == "00QDm0" and to_18(record_id[:15]) == record_id
    assert sum(digits.index(char) * 62**power for power, char in enumerate(reversed(record_id[6:15]))) == number


def test_made_ids_are_unique_per_number():
    assert len({make_id("003", n) for n in range(5000)}) == 5000


@pytest.mark.parametrize("text", ["", "abc", "00Q8d0000000zz", "00Q8d0000000zz!AAA", None])
def test_malformed_ids_are_rejected(text):
    with pytest.raises(MalformedId):
        to_18(text)
