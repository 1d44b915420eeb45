"""Names (tags, funnels, stages, groups, segments, rules) match ignoring case, Unicode-aware."""

from typing import Annotated

from pydantic import AfterValidator, StringConstraints


def name_key(name: str) -> str:
    return name.strip().lower()


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=255),
    AfterValidator(_no_nul),
]
