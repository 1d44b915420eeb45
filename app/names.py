"""Names (tags, funnels, stages, groups, segments, rules) match ignoring case, Unicode-aware.

Leading and trailing white space is not part of a name. "White space" is every character
Python, Unicode or ECMAScript (whose regular expressions OpenAPI patterns are) calls so, so
the documented pattern and the validator agree whoever reads them."""

import re
from typing import Annotated

from pydantic import AfterValidator, Field, StringConstraints

from app.types import no_nul

WHITE_SPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680"
    + "".join(map(chr, range(0x2000, 0x200B)))
    + "\u2028\u2029\u202f\u205f\u3000\ufeff"
)
WS_CLASS = (
    r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
# Some character that is not white space, and no NUL anywhere.
NAME_PATTERN = rf"^[^\x00]*[^\x00{WS_CLASS}][^\x00]*$"
_NAME_RE = re.compile(NAME_PATTERN)


def name_key(name: str) -> str:
    return name.strip(WHITE_SPACE).lower()


def _clean(value: str) -> str:
    no_nul(value)
    if not _NAME_RE.match(value):
        raise ValueError("must contain a character other than white space")
    return value.strip(WHITE_SPACE)


Name = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255),
    AfterValidator(_clean),
    Field(json_schema_extra={"pattern": NAME_PATTERN}),
]
