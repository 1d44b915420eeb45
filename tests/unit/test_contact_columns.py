"""The contact's columns are read from app.tables (app.contacts.columns); the pydantic
models that carry them in and out must agree. No database needed."""

from enum import Enum

from app.contacts.columns import COLUMNS, NEW_CONTACT, SETTABLE
from app.contacts.schemas import Contact, ContactIn

RELATED = {"tags", "details", "owners", "funnels", "groups"}


def test_a_contact_read_back_has_every_column():
    assert set(Contact.model_fields) - RELATED == {c.name for c in COLUMNS}


def test_an_upsert_may_set_exactly_the_settable_columns():
    assert set(ContactIn.model_fields) - RELATED - {"email"} == set(SETTABLE)


def test_a_new_contact_starts_as_contact_in_documents():
    defaults = {}
    for name in NEW_CONTACT:
        default = ContactIn.model_fields[name].default
        defaults[name] = default.value if isinstance(default, Enum) else default
    assert defaults == NEW_CONTACT
    assert NEW_CONTACT["sex"] == "unknown" and NEW_CONTACT["score"] == 0
    assert NEW_CONTACT["email_opt_in"] is False and NEW_CONTACT["email_valid"] is True
