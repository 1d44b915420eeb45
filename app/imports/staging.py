"""Reading an uploaded CSV as it streams: the size bound, UTF-8 (with or without BOM),
the delimiter, RFC 4180 records with their spreadsheet row numbers. Never the whole file
in memory: the upload is read in blocks and parsed record by record."""

import codecs
import csv
import io
from collections.abc import Iterator
from typing import BinaryIO

from app.errors import Invalid, TooLarge

BLOCK = 64 * 1024
DELIMITERS = (",", ";", "\t")
csv.field_size_limit(1024 * 1024)  # one cell: a megabyte at most


class Bounded(io.RawIOBase):
    """A binary stream that refuses to read past `limit` bytes (413), checked as it reads."""

    def __init__(self, raw: BinaryIO, limit: int):
        self.raw = raw
        self.limit = limit
        self.read_so_far = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        data = self.raw.read(len(buffer))
        self.read_so_far += len(data)
        if self.read_so_far > self.limit:
            raise TooLarge(f"the file is larger than the import limit of {self.limit} bytes")
        buffer[: len(data)] = data
        return len(data)


def _header_line(head: str) -> str:
    """The first record's text (up to the first line break outside quotes)."""
    quoted = False
    for i, ch in enumerate(head):
        if ch == '"':
            quoted = not quoted
        elif ch in "\r\n" and not quoted:
            return head[:i]
    return head


def detect_delimiter(head: str) -> str:
    """`,` `;` or tab: the one the header line holds most of, outside quotes (`,` if none)."""
    line = _header_line(head)
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] else ","


def records(raw: BinaryIO, limit: int) -> tuple[str, Iterator[tuple[int, list[str]]]]:
    """(the delimiter, (spreadsheet row number, cells) of every record, the header first).
    Empty lines are skipped but keep their row number. A 422 at `file` for text that is
    not UTF-8 or not CSV, a 413 past `limit` bytes."""
    stream = io.BufferedReader(Bounded(raw, limit), buffer_size=BLOCK)
    head_bytes = stream.peek(BLOCK)[:BLOCK]
    head = codecs.getincrementaldecoder("utf-8-sig")(errors="ignore").decode(head_bytes)
    delimiter = detect_delimiter(head)
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    reader = csv.reader(text, delimiter=delimiter, doublequote=True, quotechar='"')

    def each() -> Iterator[tuple[int, list[str]]]:
        line = 0
        try:
            for cells in reader:
                line += 1
                if cells and any(cells):
                    yield line, cells
        except UnicodeDecodeError:
            raise Invalid.at("file", f"not UTF-8 text (after row {line})") from None
        except csv.Error as exc:
            raise Invalid.at("file", f"row {line + 1}: not CSV: {exc}") from None

    return delimiter, each()


def row_text(cells: list[str], delimiter: str) -> str:
    """A record as a person sees it in the file: its cells joined by the delimiter, one
    quoted only when it holds the delimiter or a line break (for the errors CSV, whose
    writer neutralises a formula at its start)."""
    return delimiter.join(
        '"' + cell.replace('"', '""') + '"'
        if delimiter in cell or "\n" in cell or "\r" in cell
        else cell
        for cell in cells
    )
