"""The action list as the API takes it: every family's model in one discriminated union on
`type`. `ACTION_MODELS` is the one registry: each model carries its handler (`handles`)."""

from typing import Annotated, Union

from pydantic import Discriminator, Field, Tag

from app.actions import (
    checks,
    columns,
    coupons,
    details,
    funnels,
    groups,
    owners,
    personal_links,
    run_rule,
    tags,
)
from app.actions.base import ActionModel

# In the order OpenAPI lists them (the union's members are visible there).
ACTION_MODELS: dict[str, type[ActionModel]] = {
    m.action_type(): m
    for m in (
        columns.SetEmailOptIn,
        columns.SetPhoneOptIn,
        columns.SetEmailValid,
        owners.AddOwner,
        owners.RemoveOwner,
        run_rule.RunRule,
        funnels.SetFunnelStage,
        funnels.RemoveFromFunnel,
        columns.Delete,
        columns.Undelete,
        tags.AddTags,
        tags.RemoveTags,
        coupons.GenerateCoupons,
        checks.IdentifySex,
        columns.SetState,
        checks.InvalidateBadEmails,
        details.SetDetail,
        details.DeleteDetail,
        personal_links.GenerateLinks,
        groups.AddToGroup,
        groups.RemoveFromGroup,
        columns.SetScore,
    )
}

_unbound = [m.__name__ for m in ACTION_MODELS.values() if "handler" not in vars(m)]
if _unbound:
    raise TypeError(f"actions without a handler (bind one with @handles): {_unbound}")


def _action_kind(value) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"~{kind}" if isinstance(kind, str) and kind in ACTION_MODELS else None


Action = Annotated[
    Union[tuple(Annotated[m, Tag(f"~{k}")] for k, m in ACTION_MODELS.items())],  # noqa: UP007
    Discriminator(
        _action_kind,
        custom_error_type="invalid_action",
        custom_error_message="'type' must be one of " + ", ".join(ACTION_MODELS),
    ),
]

ActionList = Annotated[list[Action], Field(min_length=1, max_length=100)]
