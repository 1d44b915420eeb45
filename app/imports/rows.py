"""One CSV row → what it asks of its contact, or every problem it has. Pure Python, no
database: the job parses a chunk of staged rows with this, then writes them set-based."""

import re
from dataclasses import dataclass, field
from datetime import date

from pydantic import TypeAdapter, ValidationError

from app.contacts.schemas import Country, SexField, StateField, check_email
from app.csvcells import FORMULA_STARTS
from app.imports.options import DETAIL, FUNNEL, LISTS
from app.names import WHITE_SPACE, name_key
from app.types import INT64_MAX, INT64_MIN, UTCDatetime

SPLIT = re.compile(r"[;|]")
TRUE = {"true", "t", "yes", "y", "1"}
FALSE = {"false", "f", "no", "n", "0"}


@dataclass
class Record:
    """A valid row: its e-mail and what it sets (empty cells left out)."""

    line: int
    email: str
    fields: dict = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    owners: list[str] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    # funnel key → (its column, the stage's name)
    funnels: dict[str, tuple[str, str]] = field(default_factory=dict)


def unquoted(cell: str) -> str:
    """A cell as this service's own CSVs wrote it: `'=x` (a neutralised formula) reads
    back as `=x`, so an export imports as it was."""
    if cell.startswith("'") and cell[1:].startswith(FORMULA_STARTS):
        return cell[1:]
    return cell


def _adapter(kind):
    adapter = TypeAdapter(kind)

    def parse(value: str):
        try:
            return adapter.validate_python(value)
        except ValidationError as exc:
            message = exc.errors()[0]["msg"]
            raise ValueError(message.removeprefix("Value error, ")) from None

    return parse


def _bool(value: str) -> bool:
    folded = value.strip().lower()
    if folded in TRUE:
        return True
    if folded in FALSE:
        return False
    raise ValueError(f"not a yes/no value: '{value}' (true/false, yes/no, 1/0)")


def _int(value: str) -> int:
    try:
        number = int(value.strip().replace(" ", ""))
    except ValueError:
        raise ValueError(f"not a whole number: '{value}'") from None
    if not INT64_MIN <= number <= INT64_MAX:
        raise ValueError(f"out of range: '{value}'")
    return number


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"not a date (YYYY-MM-DD): '{value}'") from None


def _enum(kind):
    parse = _adapter(kind)
    return lambda value: parse(value).value


def _text(value: str) -> str | None:
    """Text as POST /v1/contacts takes it (trimmed; blank is none), without pydantic's
    cost a cell: this runs for every cell of a file."""
    value = value.strip(WHITE_SPACE)
    if len(value) > 1000:
        raise ValueError("must have at most 1000 characters")
    return value or None


def _name(value: str) -> str:
    """A tag or group name (trimmed; at most 255 characters)."""
    value = value.strip(WHITE_SPACE)
    if not value:
        raise ValueError("must contain a character other than white space")
    if len(value) > 255:
        raise ValueError(f"a name has at most 255 characters: '{value[:40]}…'")
    return value


PARSERS = {
    "first_name": _text,
    "last_name": _text,
    "phone": _text,
    "company": _text,
    "city": _text,
    "country": _adapter(Country),
    "birth_date": _date,
    "sex": _enum(SexField),
    "score": _int,
    "state": _enum(StateField),
    "email_opt_in": _bool,
    "phone_opt_in": _bool,
    "email_valid": _bool,
    "created_at": _adapter(UTCDatetime),
}
MAX_DETAIL = 10_000


def parse_row(
    line: int, cells: list[str], header: list[str], targets: list[str | None], tags: list[str]
) -> tuple[Record | None, list[tuple[str, str]]]:
    """(the row's record, []) or (None, [(column, problem), …]) with every problem."""
    problems: list[tuple[str, str]] = []
    record = Record(line=line, email="", tags=list(tags))
    for index, target in enumerate(targets):
        if target is None:
            continue
        raw = cells[index] if index < len(cells) else ""
        value = unquoted(raw).strip()
        column = header[index]
        if "\x00" in value:
            problems.append((column, "contains a NUL character"))
            continue
        if target == "email":
            if not value:
                problems.append((column, "no e-mail address"))
                continue
            try:
                record.email = check_email(value)
            except ValueError as exc:
                problems.append((column, f"{exc}: '{value}'"))
            continue
        if not value:
            continue  # an empty cell leaves the value as it is
        try:
            if target in LISTS:
                items = [v.strip() for v in SPLIT.split(value) if v.strip()]
                if target == "owners":
                    getattr(record, target).extend(check_email(v) for v in items)
                else:
                    getattr(record, target).extend(_name(v) for v in items)
            elif target.startswith(DETAIL):
                if len(value) > MAX_DETAIL:
                    raise ValueError(f"a detail has at most {MAX_DETAIL} characters")
                record.details[target[len(DETAIL) :]] = value
            elif target.startswith(FUNNEL):
                record.funnels[name_key(target[len(FUNNEL) :])] = (column, _name(value))
            else:
                parsed = PARSERS[target](value)
                if parsed is not None:  # white space only: an empty cell
                    record.fields[target] = parsed
        except ValueError as exc:
            problems.append((column, str(exc)))
    if problems:
        return None, problems
    return record, []
