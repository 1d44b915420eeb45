"""The action list: one pydantic model per action type, a discriminated union on `type`."""

import re
from typing import Annotated, Literal, Union

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StringConstraints,
    Tag,
    field_validator,
)

from app.contacts.schemas import Email, StateField
from app.names import Name
from app.types import Id, Int64, integer, text

# What the schema documents and the validator enforces (with friendlier messages).
URL_TEMPLATE = re.compile(r"^https?://[!-~]*\{token\}[!-~]*$")


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SetEmailOptIn(_Action):
    type: Literal["set_email_opt_in"]
    value: StrictBool


class SetPhoneOptIn(_Action):
    type: Literal["set_phone_opt_in"]
    value: StrictBool


class SetEmailValid(_Action):
    type: Literal["set_email_valid"]
    value: StrictBool


class AddOwner(_Action):
    type: Literal["add_owner"]
    owner: Email


class RemoveOwner(_Action):
    type: Literal["remove_owner"]
    owner: Email


class RunRule(_Action):
    type: Literal["run_rule"]
    rule: Id
    check_condition: StrictBool = False


class SetFunnelStage(_Action):
    type: Literal["set_funnel_stage"]
    funnel: Name
    stage: Name


class RemoveFromFunnel(_Action):
    type: Literal["remove_from_funnel"]
    funnel: Name


class Delete(_Action):
    type: Literal["delete"]


class Undelete(_Action):
    type: Literal["undelete"]


class AddTags(_Action):
    type: Literal["add_tags"]
    tags: list[Name] = Field(min_length=1, max_length=1000)


class RemoveTags(_Action):
    type: Literal["remove_tags"]
    tags: list[Name] = Field(min_length=1, max_length=1000)


class GenerateCoupons(_Action):
    type: Literal["generate_coupons"]
    name: Name
    length: integer(ge=5, le=64)
    valid_days: integer(ge=1, le=36_500) | None = None


class IdentifySex(_Action):
    type: Literal["identify_sex"]
    overwrite: StrictBool = False


class SetState(_Action):
    type: Literal["set_state"]
    state: StateField


class InvalidateBadEmails(_Action):
    type: Literal["invalidate_bad_emails"]


class SetDetail(_Action):
    type: Literal["set_detail"]
    name: text(255, min_length=1)
    value: text(10_000)


class DeleteDetail(_Action):
    type: Literal["delete_detail"]
    name: text(255, min_length=1)


class GenerateLinks(_Action):
    type: Literal["generate_links"]
    url: Annotated[
        str,
        StringConstraints(max_length=2000),
        Field(
            json_schema_extra={"pattern": URL_TEMPLATE.pattern},
            description="an http(s) URL in printable ASCII (percent-encode the rest) "
            "with {token} where each contact's token goes",
        ),
    ]

    @field_validator("url")
    @classmethod
    def _template(cls, v: str) -> str:
        if not (v.startswith("https://") or v.startswith("http://")):
            raise ValueError("must be an http(s) URL")
        if "{token}" not in v:
            raise ValueError("must contain {token}")
        if not URL_TEMPLATE.match(v):
            raise ValueError("must be printable ASCII: no white space or control characters")
        return v


class AddToGroup(_Action):
    type: Literal["add_to_group"]
    group: Name


class RemoveFromGroup(_Action):
    type: Literal["remove_from_group"]
    group: Name


class SetScore(_Action):
    type: Literal["set_score"]
    mode: Literal["set", "add"] = "set"
    value: Int64


ACTION_MODELS: dict[str, type[_Action]] = {
    m.model_fields["type"].annotation.__args__[0]: m
    for m in (
        SetEmailOptIn,
        SetPhoneOptIn,
        SetEmailValid,
        AddOwner,
        RemoveOwner,
        RunRule,
        SetFunnelStage,
        RemoveFromFunnel,
        Delete,
        Undelete,
        AddTags,
        RemoveTags,
        GenerateCoupons,
        IdentifySex,
        SetState,
        InvalidateBadEmails,
        SetDetail,
        DeleteDetail,
        GenerateLinks,
        AddToGroup,
        RemoveFromGroup,
        SetScore,
    )
}


def _action_kind(value) -> str | None:
    kind = value.get("type") if isinstance(value, dict) else getattr(value, "type", None)
    return f"~{kind}" if kind in ACTION_MODELS else None


Action = Annotated[
    Union[tuple(Annotated[m, Tag(f"~{k}")] for k, m in ACTION_MODELS.items())],  # noqa: UP007
    Discriminator(
        _action_kind,
        custom_error_type="invalid_action",
        custom_error_message="'type' must be one of " + ", ".join(ACTION_MODELS),
    ),
]

ActionList = Annotated[list[Action], Field(min_length=1, max_length=100)]
