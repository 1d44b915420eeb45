"""What the console's forms offer, read from the registries the API itself checks against:
fields with their kind and operators, operators with the shape of their operand, and the
action models' JSON schemas. The console never keeps a copy of these lists."""

from functools import cache

from app.actions.schemas import ACTION_MODELS
from app.selection.fields import FIELDS
from app.selection.operators import OPERATORS, operators_for

# The kinds a detail test's `as` and an event test's `agg` give their operand.
DETAIL_KINDS = {"string": "text", "number": "number", "date": "date"}
AGG_KINDS = {"count": "number", "sum": "number", "max": "number", "last_at": "datetime"}
# The contact fields an export or a preview may name besides the columns.
EXPORT_EXTRAS = ("tags", "groups", "owners", "funnels", "details")
CONTACT_COLUMNS = (
    "id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "company",
    "city",
    "country",
    "birth_date",
    "sex",
    "score",
    "state",
    "email_opt_in",
    "phone_opt_in",
    "email_valid",
    "deleted",
    "created_at",
    "updated_at",
)


@cache
def catalog() -> dict:
    kinds = ("text", "enum", "number", "date", "datetime", "bool")
    return {
        "fields": [
            {"name": f.name, "kind": f.kind, "choices": list(f.choices), "operators": f.operators}
            for f in FIELDS.values()
        ],
        "operators": {name: op.operand.value for name, op in OPERATORS.items()},
        "kinds": {kind: operators_for(kind) for kind in kinds},
        "detail_kinds": DETAIL_KINDS,
        "aggregates": AGG_KINDS,
        "contact_fields": [*CONTACT_COLUMNS, *EXPORT_EXTRAS],
        "actions": {kind: model.model_json_schema() for kind, model in ACTION_MODELS.items()},
    }
