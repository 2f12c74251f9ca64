"""Salesforce id checksums (pure)."""

from __future__ import annotations

import pytest

from include.salesforce_emulator.ids import MalformedId, make_id, to_18


def test_checksum_matches_salesforce_example():
    assert to_18("001A0000006Vm9r") == "001A0000006Vm9rIAC"


def test_made_ids_have_prefix_and_valid_checksum():
    record_id = make_id("00Q", 123456789)
    assert record_id.startswith("00Q") and len(record_id) == 18 and to_18(record_id[:15]) == record_id


def test_made_ids_are_unique_per_number():
    assert len({make_id("003", n) for n in range(5000)}) == 5000


@pytest.mark.parametrize("text", ["", "abc", "00Q8d0000000zz", "00Q8d0000000zz!AAA", None])
def test_malformed_ids_are_rejected(text):
    with pytest.raises(MalformedId):
        to_18(text)
