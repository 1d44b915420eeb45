"""What an import is asked to do: its options (the `options` form field) and the mapping
of the file's columns to contact fields, checked at submit (every problem a 422 at its
path) and stored with the job as its `import_spec`."""

import json
import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from app.contacts.columns import SETTABLE
from app.errors import Invalid, pydantic_details
from app.names import Name, name_key
from app.types import text

# Contact fields a column may fill (`email` is the key; the rest as POST /v1/contacts).
FIELDS: tuple[str, ...] = ("email", *SETTABLE)
LISTS = ("tags", "groups", "owners")  # several values a cell, split on `;` or `|`
DETAIL = "detail:"
FUNNEL = "funnel:"
SKIP = "skip"
TARGET_HELP = (
    f"a contact field ({', '.join(FIELDS)}), {', '.join(LISTS)}, detail:NAME, funnel:NAME or skip"
)


def _target(value: str) -> str:
    value = value.strip()
    if value in FIELDS or value in LISTS or value == SKIP:
        return value
    for prefix in (DETAIL, FUNNEL):
        if value.startswith(prefix) and value[len(prefix) :].strip():
            return prefix + value[len(prefix) :].strip()
    raise ValueError(f"unknown target '{value}': {TARGET_HELP}")


Target = Annotated[str, Field(max_length=300), AfterValidator(_target)]


class ImportOptions(BaseModel):
    """The `options` form field of POST /v1/imports (JSON)."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, Target] | None = Field(
        None,
        max_length=1000,
        description="CSV header → target; headers not named here are mapped by name",
    )
    tags: list[Name] = Field(default_factory=list, max_length=100)
    update_existing: bool = Field(True, description="false: only contacts not there yet")
    opt_in_may_turn_on: bool = Field(
        False, description="true: an opt-in may go from false to true (opt-outs are sticky)"
    )
    name: text(255) | None = None


def parse_options(raw: str | None) -> ImportOptions:
    """The options form field, or a 422 at `options…`."""
    if raw is None or not raw.strip():
        return ImportOptions()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        message = f"not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        raise Invalid.at("options", message) from None
    if data is None:
        return ImportOptions()
    if not isinstance(data, dict):
        raise Invalid.at("options", "must be a JSON object")
    try:
        return ImportOptions.model_validate(data)
    except ValidationError as exc:
        details = pydantic_details(exc.errors(), prefix="options")
        raise Invalid(f"{details[0]['path']}: {details[0]['message']}", details=details) from None


# --- mapping headers to targets --------------------------------------------------------


def _folded(header: str) -> str:
    return re.sub(r"[\s_\-]", "", header).lower()


AUTO: dict[str, str] = {_folded(f): f for f in (*FIELDS, *LISTS)} | {"mail": "email"}


def auto_target(header: str) -> str | None:
    """The target a header names by itself (ignoring case, spaces, `-` and `_`; `e-mail`
    and `mail` are `email`; `detail:NAME` and `funnel:NAME` as they are), or None."""
    found = AUTO.get(_folded(header))
    if found:
        return found
    for prefix in (DETAIL, FUNNEL):
        if header.lower().startswith(prefix) and header[len(prefix) :].strip():
            return prefix + header[len(prefix) :].strip()
    return None


def map_columns(header: list[str], options: ImportOptions) -> tuple[list[str | None], list[str]]:
    """Each column's target (None: skipped), and the headers nothing maps (unmapped).
    422 for a `columns` entry naming no header, two columns for one field, no e-mail."""
    stripped = [h.strip() for h in header]
    explicit = dict(options.columns or {})
    problems: list[dict] = []
    by_header = {}
    for name, target in explicit.items():
        if name.strip() in stripped:
            by_header[name.strip()] = (target, f"options.columns.{name}")
        else:
            problems.append(
                {
                    "path": f"options.columns.{name}",
                    "message": f"the file has no column '{name}' (its header: "
                    + ", ".join(f"'{h}'" for h in stripped)
                    + ")",
                }
            )
    targets: list[str | None] = []
    unmapped: list[str] = []
    where: dict[str, str] = {}  # single-valued target → the path that claims it
    for index, h in enumerate(stripped):
        if h in by_header:
            target, path = by_header[h]
        else:
            target, path = auto_target(h), "file"
            if target is None and h:  # a column without a header is no one's loss
                unmapped.append(h)
        if target == SKIP:
            target = None
        if target is not None and target not in LISTS:
            if target in where:
                problems.append(
                    {
                        "path": path if path != "file" else f"file.header[{index}]",
                        "message": f"a second column for {target} ('{h}'); name one of them "
                        "`skip` in options.columns",
                    }
                )
            where[target] = path
        targets.append(target)
    if "email" not in targets and not problems:
        path = "options.columns" if explicit else "file"
        problems.append(
            {
                "path": path,
                "message": "no column for email: name one `email` (or e-mail, mail) in the "
                "header, or map one in options.columns",
            }
        )
    if problems:
        raise Invalid(f"{problems[0]['path']}: {problems[0]['message']}", details=problems)
    return targets, unmapped


def funnel_keys(targets: list[str | None]) -> list[str]:
    return sorted({name_key(t[len(FUNNEL) :]) for t in targets if t and t.startswith(FUNNEL)})
