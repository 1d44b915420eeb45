"""Saved segments: a name and a stored selection, usable as a selector. A segment is
checked like any selection when it is saved (unknown names, cycles through it, depth);
one that a saved segment or rule names cannot be renamed or deleted (app.references)."""

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from app import references
from app.errors import Conflict, NotFound
from app.names import name_key
from app.selection import repository
from app.selection.check import check_selection
from app.selection.schemas import SegmentIn


def source(conn: Connection, account_id: int):
    """The account's saved segments, for the check pass."""
    return lambda key: repository.stored_selection(conn, account_id, key)


def _values(conn: Connection, account_id: int, body: SegmentIn) -> dict:
    selection = body.selection.model_dump(mode="json", by_alias=True, exclude_unset=True)
    # What it names is locked before it is checked: none can go before this save commits.
    references.hold(conn, account_id, references.selection_uses(selection))
    key = name_key(body.name)
    check_selection(
        body.selection,
        source(conn, account_id),
        repository.AccountNames(conn, account_id),
        prefix="selection",
        saving=key,
    )
    return {"name": body.name, "name_key": key, "selection": selection}


def get_segment(conn: Connection, account_id: int, segment_id: int) -> dict:
    found = repository.get(conn, account_id, segment_id)
    if found is None:
        raise NotFound(f"segment {segment_id} not found")
    return found


def list_segments(conn: Connection, account_id: int) -> list[dict]:
    return repository.list_all(conn, account_id)


def create_segment(conn: Connection, account_id: int, body: SegmentIn) -> dict:
    values = _values(conn, account_id, body)
    try:
        segment_id = repository.insert(conn, account_id, values)
    except IntegrityError:
        raise Conflict(f"a segment named '{body.name}' exists") from None
    return get_segment(conn, account_id, segment_id)


def update_segment(conn: Connection, account_id: int, segment_id: int, body: SegmentIn) -> dict:
    references.guard(conn, account_id, "segment", segment_id, rename_to=body.name)
    values = _values(conn, account_id, body)
    try:
        repository.update(conn, account_id, segment_id, values)
    except IntegrityError:
        raise Conflict(f"a segment named '{body.name}' exists") from None
    return get_segment(conn, account_id, segment_id)


def delete_segment(conn: Connection, account_id: int, segment_id: int) -> None:
    references.guard(conn, account_id, "segment", segment_id)
    repository.delete(conn, account_id, segment_id)
