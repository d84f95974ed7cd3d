"""Ids, timestamps, paging and key hashing."""

import hashlib
import re
from datetime import datetime, timezone

import pytest

from chalicelib.errors import ValidationError
from chalicelib.ids import derived_id, iso, is_id, new_id
from chalicelib.paging import PageRequest, paginate
from chalicelib.services.accounts import effective_scopes, generate_key, hash_key


@pytest.mark.parametrize("prefix", ["acc", "wf", "ex", "trg", "int", "whk", "tpl", "bkt", "key", "evt"])
def test_ids_are_prefix_and_24_base32_characters(prefix):
    value = new_id(prefix)
    assert re.fullmatch(rf"{prefix}_[a-z2-7]{{24}}", value)
    assert is_id(value, prefix)


def test_ids_are_unique_and_unknown_prefixes_refused():
    assert len({new_id("wf") for _ in range(1000)}) == 1000
    with pytest.raises(ValueError):
        new_id("usr")


def test_derived_ids_are_stable():
    assert derived_id("acc", "x") == derived_id("acc", "x") != derived_id("acc", "y")
    assert is_id(derived_id("key", "x"), "key")


@pytest.mark.parametrize("value, prefix", [("wf_short", "wf"), ("ex_" + "a" * 24, "wf"), ("wf_" + "1" * 24, "wf"),
                                           ("slack.incident", "wf"), ("wf_" + "A" * 24, "wf")])
def test_is_id_rejects_other_shapes(value, prefix):
    assert not is_id(value, prefix)


def test_timestamps_are_utc_with_z():
    moment = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=timezone.utc)
    assert iso(moment) == "2026-05-01T12:00:00.123Z"


def test_paging_defaults_and_meta():
    request = PageRequest.from_query({})
    assert (request.page, request.per_page) == (1, 20)
    items, meta = paginate(list(range(45)), PageRequest(page=3, per_page=20))
    assert items == list(range(40, 45))
    assert meta == {"page": 3, "per_page": 20, "total": 45, "total_pages": 3}
    assert paginate([], request) == ([], {"page": 1, "per_page": 20, "total": 0, "total_pages": 0})


def test_page_size_is_an_alias_of_per_page():
    assert PageRequest.from_query({"page_size": "10"}).per_page == 10
    assert PageRequest.from_query({"page_size": "10", "per_page": "5"}).per_page == 5


@pytest.mark.parametrize("query, field", [({"per_page": "101"}, "per_page"), ({"page": "0"}, "page"),
                                          ({"page": "two"}, "page"), ({"page_size": "500"}, "page_size")])
def test_bad_paging_is_a_validation_error(query, field):
    with pytest.raises(ValidationError) as raised:
        PageRequest.from_query(query)
    assert raised.value.details[0]["field"] == field


def test_keys_hash_with_sha256_and_are_random():
    key = generate_key()
    assert key.startswith("slk_") and len(key) > 40
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()
    assert generate_key() != key


def test_admin_implies_read_write_execute_only():
    assert effective_scopes(["admin"]) == {"read", "write", "execute", "admin"}
    assert effective_scopes(["operator"]) == {"operator"}
    assert effective_scopes(["read", "execute"]) == {"read", "execute"}
