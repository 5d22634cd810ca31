"""Hostile calendar feeds and workbooks, as an attacker sent them to the bridge (issue 23):
used by tests/test_bridge_hostile.py and bench/bench_bridge_hostile.py."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import openpyxl

STAMP = "%Y%m%dT%H%M%S"
#: the rules that stalled every site: expanded whole before the 20,000-instance cap was checked
RULES = {
    "secondly-count": "FREQ=SECONDLY;COUNT=10000000",
    "secondly": "FREQ=SECONDLY",
    "minutely": "FREQ=MINUTELY",
}


def _vevent(uid: str, start: datetime, extra: str = "") -> str:
    end = start + timedelta(seconds=1)
    return (
        f"BEGIN:VEVENT\r\nUID:{uid}\r\nDTSTART;TZID=Europe/Copenhagen:{start.strftime(STAMP)}\r\n"
        f"DTEND;TZID=Europe/Copenhagen:{end.strftime(STAMP)}\r\n{extra}CATEGORIES:a17\r\nSUMMARY:Volleyball\r\nEND:VEVENT\r\n"
    )


def _calendar(events: str) -> bytes:
    return f"BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//attacker//\r\n{events}END:VCALENDAR\r\n".encode()


def recurring(rule: str, start: datetime) -> bytes:
    """One event repeating by ``rule`` from ``start`` (a local time in Copenhagen)."""
    return _calendar(_vevent("runaway@attacker", start, f"RRULE:{rule}\r\n"))


def large(start: datetime, size: int = 30 * 1024 * 1024) -> bytes:
    """About ``size`` bytes of single events, one a minute from ``start``: each is a
    booking, so the parse alone costs the parser gigabytes."""
    one = len(_vevent("x", start)) + 8
    events = "".join(_vevent(f"e{i}@attacker", start + timedelta(minutes=i)) for i in range(size // one))
    return _calendar(events)


def xlsx(path: Path, rows: Sequence[Sequence[Any]], dimension: str | None = None, empty_cells: int = 0) -> Path:
    """A workbook as openpyxl writes it, its ``<dimension ref=...>`` then rewritten (a stale
    one, or one claiming the whole sheet: ``A1:XFD1048576``); ``empty_cells``: a last row
    of that many ``<c/>`` (a few kilobytes zipped, a gigabyte to a parser)."""
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(list(row))
    buffer = io.BytesIO()
    book.save(buffer)
    if dimension is None and not empty_cells:
        path.write_bytes(buffer.getvalue())
        return path
    with zipfile.ZipFile(buffer) as source, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                if dimension is not None:
                    data, n = re.subn(rb'<dimension ref="[^"]*"', f'<dimension ref="{dimension}"'.encode(), data)
                    assert n == 1, "openpyxl wrote no <dimension>"
                if empty_cells:
                    last = f'<row r="{len(rows) + 1}">'.encode() + b"<c/>" * empty_cells + b"</row></sheetData>"
                    data = data.replace(b"</sheetData>", last)
            target.writestr(item, data)
    return path
