"""The OpenAPI document's operator and field tables come from the registries: an operator,
operand, kind or field note without its words is refused at import (glossary.py), never shown
as a blank cell."""

import pytest

from app.selection import glossary
from app.selection.operators import OPERATORS, Operand


def test_every_registry_entry_has_its_words():
    assert glossary._words_missing() == []


@pytest.mark.parametrize(
    ("table", "key", "missing"),
    [
        (glossary.MEANINGS, "between", "operator between"),
        (glossary.OPERAND_WORDS, Operand.PAIR, "operand pair"),
        (glossary.KIND_WORDS, "datetime", "kind datetime"),
    ],
)
def test_a_row_without_words_is_named(monkeypatch, table, key, missing):
    monkeypatch.delitem(table, key)
    assert glossary._words_missing() == [missing]


def test_a_note_for_no_field_is_named(monkeypatch):
    monkeypatch.setitem(glossary.FIELD_NOTES, "nickname", "a field that does not exist")
    assert glossary._words_missing() == ["field nickname"]


def test_negative_operators_say_they_hold_without_a_value():
    lines = glossary.operator_table().splitlines()
    rows = {line.split("|")[1].strip(" `"): line for line in lines if line.startswith("| `")}
    for name, op in OPERATORS.items():
        assert ("also true with no value" in rows[name]) == bool(op.negates), name


def test_operators_by_kind_list_the_registry():
    schema: dict = {}
    glossary.event_operators(schema)
    assert "`count`, `sum`, `max`: `eq`, `ne`" in schema["description"]
    assert "`last_at`: " in schema["description"]
    assert "`within_last_days`" in schema["description"].split("`last_at`: ")[1]
