"""The event filter language (SPEC §6.3): one table per operator, type mismatches included."""

import pytest

from chalicelib.triggers.filters import OPERATORS, filter_problems, lookup, matches, MISSING

DATA = {"file_type": "pdf", "size": 2048, "name": "Invoice-2026.PDF", "tags": ["urgent", "billing"],
        "ticket": {"priority": "high", "score": 7.5, "open": True}, "empty": None}


@pytest.mark.parametrize("operator, key, operand, expected", [
    ("eq", "file_type", "pdf", True), ("eq", "file_type", "doc", False), ("eq", "size", "2048", False),
    ("eq", "ticket.open", 1, False), ("eq", "ticket.open", True, True), ("eq", "missing", None, False),
    ("ne", "file_type", "doc", True), ("ne", "file_type", "pdf", False), ("ne", "missing", "x", True),
    ("gt", "size", 1000, True), ("gt", "size", 2048, False), ("gt", "size", "1000", False), ("gt", "missing", 1, False),
    ("gte", "size", 2048, True), ("gte", "ticket.score", 8, False), ("gte", "ticket.open", 0, False),
    ("lt", "ticket.score", 8, True), ("lt", "name", "J", True), ("lt", "name", 5, False),
    ("lte", "size", 2048, True), ("lte", "tags", 3, False),
    ("in", "file_type", ["pdf", "doc"], True), ("in", "file_type", ["doc"], False), ("in", "missing", [None], False),
    ("in", "size", "2048", False),
    ("nin", "file_type", ["doc"], True), ("nin", "file_type", ["pdf"], False), ("nin", "size", 5, False),
    ("contains", "tags", "urgent", True), ("contains", "tags", "later", False), ("contains", "name", "2026", True),
    ("contains", "size", 2, False), ("contains", "name", 2026, False),
    ("~starts", "name", "invoice", True), ("~starts", "name", "receipt", False), ("~starts", "size", "2", False),
    ("~ends", "name", ".pdf", True), ("~ends", "name", ".doc", False), ("~ends", "tags", "g", False),
    ("~contains", "name", "VOICE", True), ("~contains", "name", "xyz", False), ("~contains", "missing", "x", False),
    ("regex", "name", r"^Invoice-\d{4}", True), ("regex", "name", r"^\d", False), ("regex", "size", r"\d", False),
    ("regex", "name", "(unclosed", False),
    ("exists", "ticket.priority", True, True), ("exists", "missing", True, False), ("exists", "missing", False, True),
    ("exists", "empty", True, True), ("exists", "name", "yes", False),
])
def test_each_operator(operator, key, operand, expected):
    assert matches({key: {operator: operand}}, DATA) is expected


def test_every_operator_of_the_spec_is_there():
    assert list(OPERATORS) == ["eq", "ne", "gt", "gte", "lt", "lte", "in", "nin", "contains", "~starts", "~ends",
                               "~contains", "regex", "exists"]


def test_a_bare_value_means_eq_and_several_keys_all_match():
    assert matches({"file_type": "pdf", "ticket.priority": "high"}, DATA)
    assert not matches({"file_type": "pdf", "ticket.priority": "low"}, DATA)
    assert matches({}, DATA) and matches(None, DATA)


def test_several_operators_on_one_key_all_match():
    assert matches({"size": {"gt": 1000, "lt": 4096}}, DATA)
    assert not matches({"size": {"gt": 1000, "lt": 2000}}, DATA)


def test_logical_operators_nest():
    assert matches({"$or": [{"file_type": "doc"}, {"size": {"gte": 2048}}]}, DATA)
    assert not matches({"$and": [{"file_type": "pdf"}, {"tags": {"contains": "later"}}]}, DATA)
    assert matches({"$not": {"file_type": "doc"}}, DATA)
    assert matches({"$and": [{"$or": [{"file_type": "x"}, {"name": {"~starts": "inv"}}]},
                             {"$not": {"ticket.open": False}}]}, DATA)


def test_keys_can_be_templates_rendered_against_the_context():
    context = {"context": {"name": "Tess", "event": {"data": {"name": "Tom"}}}}
    assert matches({"{{ context.name }}": {"~starts": "T"}}, {}, context)
    assert matches({"{{ context.event.data.name }}": "Tom"}, {}, context)
    assert not matches({"{{ context.nothing.here }}": {"exists": True}}, {}, context)
    assert matches({"{{ context.nothing.here }}": {"exists": False}}, {}, context)


def test_paths_reach_into_lists():
    assert lookup(DATA, "tags.1") == "billing"
    assert lookup(DATA, "tags.7") is MISSING and lookup(DATA, "size.x") is MISSING


@pytest.mark.parametrize("filters, expected", [
    ({"a": {"between": [1, 2]}}, [("filters.a", "unknown operator 'between'; see GET /api/v1/filter-operators")]),
    ({"a": {"in": "x"}}, [("filters.a.in", "must be a list")]),
    ({"a": {"exists": "yes"}}, [("filters.a.exists", "must be true or false")]),
    ({"$or": {}}, [("filters.$or", "must be a non-empty list of filters")]),
    ({"$xor": []}, [("filters.$xor", "unknown logical operator; use $and, $or or $not")]),
    ([], [("filters", "must be an object")]),
    ({"$and": [{"a": {"nin": 3}}]}, [("filters.$and[0].a.nin", "must be a list")]),
])
def test_write_time_problems_name_the_path(filters, expected):
    assert filter_problems(filters) == expected


def test_bad_regexes_and_templates_are_found_at_write_time():
    assert filter_problems({"a": {"regex": "(unclosed"}})[0][0] == "filters.a.regex"
    assert filter_problems({"{{ context.name ": "x"})[0][0] == "filters.{{ context.name "
    assert filter_problems({"a": {"regex": "^ok$"}, "{{ context.name }}": {"~starts": "T"}}) == []
