"""The action registry, without a database: every action type has a model, a handler and a
place in the union, and the dispatcher treats every handler alike."""

import importlib
import pkgutil

import pytest
from pydantic import TypeAdapter, ValidationError

import app.actions
from app.actions import ACTION_MODELS, Action, ActionHandler, ActionModel, prepare
from app.actions.run_rule import RunRule
from app.errors import Invalid


def _all_models() -> set[type[ActionModel]]:
    """Every action model defined in any module of app.actions, imported or not yet."""
    for module in pkgutil.iter_modules(app.actions.__path__):
        importlib.import_module(f"app.actions.{module.name}")
    found, todo = set(), [ActionModel]
    while todo:
        for sub in todo.pop().__subclasses__():
            found.add(sub)
            todo.append(sub)
    return {m for m in found if "type" in m.model_fields}


def test_every_model_is_in_the_registry():
    assert _all_models() == set(ACTION_MODELS.values())


@pytest.mark.parametrize("kind", list(ACTION_MODELS))
def test_every_action_type_has_a_model_and_a_handler(kind):
    model = ACTION_MODELS[kind]
    assert model.action_type() == kind
    handler = model.handler
    assert issubclass(handler, ActionHandler)
    assert handler.type == kind
    assert handler.apply is not ActionHandler.apply, f"{kind} cannot apply"
    counts = handler.changes is not ActionHandler.changes
    assert counts or handler.would_change is not ActionHandler.would_change, f"{kind} cannot count"


def test_the_union_holds_every_model_in_registry_order():
    schema = TypeAdapter(Action).json_schema()
    members = [ref["$ref"].rsplit("/", 1)[-1] for ref in schema["oneOf"]]
    assert members == [m.__name__ for m in ACTION_MODELS.values()]


@pytest.mark.parametrize("kind", list(ACTION_MODELS))
def test_the_union_picks_the_model_by_type(kind):
    with pytest.raises(ValidationError) as caught:  # an unknown field: the model's own error
        TypeAdapter(Action).validate_python({"type": kind, "unexpected": 1})
    errors = caught.value.errors()
    assert {e["loc"][0] for e in errors} == {f"~{kind}"}
    assert {"type": "extra_forbidden", "loc": (f"~{kind}", "unexpected")} in [
        {"type": e["type"], "loc": e["loc"]} for e in errors
    ]


def test_an_unknown_type_lists_the_known_ones():
    with pytest.raises(ValidationError, match="'type' must be one of set_email_opt_in, "):
        TypeAdapter(Action).validate_python({"type": "nope"})


def test_prepare_hands_the_rule_stack_to_every_handler():
    # A rule that runs itself is refused before any lookup: no connection is needed.
    with pytest.raises(Invalid) as caught:
        prepare(None, 1, [RunRule(type="run_rule", rule=7)], create=False, stack=(7,))
    assert caught.value.details == [{"path": "actions[0].rule", "message": "rule 7 runs itself"}]
