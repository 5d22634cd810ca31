"""The municipality's spreadsheets, as Excel writes them: CSV with ``;`` or ``,``, UTF-8
with or without a byte-order mark, or ``.xlsx``.

A bad row is reported as ``file:line: column: problem`` and left out, so one typo does
not hold up a whole municipality's bookings; the rest goes on. Only the columns Haldor
needs are read: a sheet that also holds members' names or e-mail addresses passes none
of them on.

A workbook's own ``<dimension>`` is not trusted: one claiming ``A1:XFD1048576`` made every
row 16,384 cells wide (gigabytes for a 500 kB file), and a stale, too small one cut rows
off. Rows are read as the
file has them, up to a row and a column cap; a sheet beyond either is refused whole.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from haldor import cards
from haldor.errors import DocumentError
from haldor.protocol import IDENTIFIER, IDENTIFIER_TEXT, Role
from haldor.records import record


@record
class Row:
    """One data row: its line in the file (1 is the header) and its cells by column;
    ``short``: fewer cells than the header (a file cut off in the middle of a row)."""

    line: int
    cells: dict[str, str]
    short: bool = False


@dataclass
class Sheet:
    """What a sheet gave: its items, and the rows left out with why."""

    path: str
    rows: int = 0
    items: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@record
class Caps:
    """The most rows (the header included) and columns a sheet may have (``[limits]``)."""

    rows: int = 300_000
    columns: int = 256


def read_rows(path: str | Path, caps: Caps = Caps()) -> list[Row]:
    """The rows of a CSV or ``.xlsx`` file, header names folded to lower case."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read: {exc.strerror}") from None
    if path.suffix.lower() == ".xlsx" or data.startswith(b"PK\x03\x04"):  # a workbook, whatever its name
        table = _xlsx(path, data)
    else:
        table = iter(_csv(path, data))
    header: list[str] | None = None
    rows = []
    for number, values in enumerate(table, start=1):
        if number > caps.rows:
            raise DocumentError(f"{path}: more than {caps.rows} rows (limits.sheet_rows); nothing of it is used")
        if len(values) > caps.columns and _last_value(values) > caps.columns:  # empty cells after it do not count
            raise DocumentError(
                f"{path}:{number}: more than {caps.columns} columns (limits.sheet_columns); nothing of it is used"
            )
        if header is None:
            header = [h.strip().lower() for h in values]
            width = len([h for h in header if h])
        elif any(v.strip() for v in values):  # Excel leaves empty rows at the end
            cells = {h: (values[i].strip() if i < len(values) else "") for i, h in enumerate(header) if h}
            rows.append(Row(number, cells, short=len(values) < width))
    if header is None:
        raise DocumentError(f"{path}: empty: no header row")
    return rows


def _last_value(values: list[str]) -> int:
    """How many cells up to the last one that holds something."""
    return next((i + 1 for i in range(len(values) - 1, -1, -1) if values[i].strip()), 0)


def _csv(path: Path, data: bytes) -> list[list[str]]:
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DocumentError(f'{path}: saved as UTF-16 (Excel\'s "Unicode text"); save it as "CSV UTF-8"')
    try:
        text = data.decode("utf-8-sig")  # Excel's "CSV UTF-8" starts with a BOM
    except UnicodeDecodeError:
        try:
            text = data.decode("cp1252")  # Excel's plain "CSV" on a Danish Windows
        except UnicodeDecodeError:
            raise DocumentError(f'{path}: neither UTF-8 nor Windows-1252 text; save it as "CSV UTF-8"') from None
    first = text.split("\n", 1)[0]
    try:
        return list(csv.reader(io.StringIO(text), delimiter=";" if first.count(";") >= first.count(",") else ","))
    except csv.Error as exc:
        raise DocumentError(f"{path}: not a readable CSV file ({exc})") from None


def _xlsx(path: Path, data: bytes) -> Iterator[list[str]]:
    """Row by row, each as wide as its last cell: the file's ``<dimension>`` is ignored."""
    import openpyxl  # only a bridge that is given .xlsx pays for it

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a file that is not a workbook
        raise DocumentError(f"{path}: not an Excel workbook ({_one_line(exc)})") from None
    try:
        sheet = book.worksheets[0]
        sheet.reset_dimensions()
        width = None  # the header's: a row ends at its last cell, not cut off there as a CSV line is
        for row in sheet.iter_rows(min_row=1, min_col=1, values_only=True):
            values = ["" if v is None else _cell_text(v) for v in row]
            width = len(values) if width is None else width
            yield values + [""] * (width - len(values))
    except Exception as exc:  # a sheet's XML broken half way
        raise DocumentError(f"{path}: not a readable Excel workbook ({_one_line(exc)})") from None
    finally:
        book.close()


def _one_line(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= 120 else text[:117] + "..."


def _cell_text(value: Any) -> str:
    if isinstance(value, datetime):
        # a date cell is a midnight: written as the date, so it means what the same date in CSV means
        return value.date().isoformat() if value.time() == time(0) else value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a PIN or card number typed as a number
    return str(value)


class BadCell(ValueError):
    """A cell that cannot be used; the message names the problem, the caller the place."""


Parser = Callable[[Row, "Context"], dict[str, Any]]


@record
class Context:
    """What a row is read against: the time zone for dates without one, and the length
    of a PIN whose leading zeros a spreadsheet dropped (0: not known)."""

    tz: ZoneInfo
    pin_digits: int = 0


def pin_length(rows: list[Row], given: int = 0) -> int:
    """The length every PIN has: ``given`` (``[sheets] pin_digits``), else the one length
    that all the column's valid PINs share (0: none, or several). Excel saves ``0482``
    typed into a number column as 482; with this length it is read back as ``0482``."""
    if given:
        return given
    lengths = {len(p) for r in rows if cards.is_pin(p := r.cells.get("pin", ""))}
    return lengths.pop() if len(lengths) == 1 else 0


def read_sheet(
    path: str | Path, columns: Iterable[str], parse: Parser, ctx: Context, key: Iterable[str] = ("id",), caps: Caps = Caps()
) -> Sheet:
    """Every row through ``parse``; a row that fails is reported and left out, and so is
    one cut short or repeating the ``key`` of a row before it (the first counts)."""
    rows = read_rows(path, caps)
    sheet = Sheet(str(path), rows=len(rows))
    needed, key = list(columns), tuple(key)
    if "pin" in needed:
        ctx = replace(ctx, pin_digits=pin_length(rows, ctx.pin_digits))
    header = set(rows[0].cells) if rows else _header_of(path)
    missing = [c for c in needed if c not in header]
    if missing:
        raise DocumentError(f"{path}:1: no column {missing[0]!r} (the header needs {', '.join(needed)})")
    seen: dict[tuple[Any, ...], int] = {}
    for row in rows:
        try:
            if row.short:
                raise BadCell("fewer cells than the header (the file cut off?)")
            item = parse(row, ctx)
            ident_of = tuple(item.get(k) for k in key)
            if key and ident_of in seen:
                raise BadCell(f"{key[-1]}: {ident_of[-1]!r} again (line {seen[ident_of]} counts)")
            seen[ident_of] = row.line
            note = item.pop("_note", None)
            if note:
                sheet.problems.append(f"{path}:{row.line}: {note}")
            sheet.items.append(item)
        except BadCell as exc:
            sheet.problems.append(f"{path}:{row.line}: {exc}")
    return sheet


def _header_of(path: str | Path) -> set[str]:
    """The columns of a sheet with no data rows (a header alone must still be complete)."""
    table = _csv(Path(path), Path(path).read_bytes()) if Path(path).suffix.lower() != ".xlsx" else []
    return {h.strip().lower() for h in table[0]} if table else set()


def ident(row: Row, column: str, *, required: bool = True) -> str | None:
    value = row.cells.get(column, "")
    if not value:
        if required:
            raise BadCell(f"{column}: empty")
        return None
    if not IDENTIFIER.fullmatch(value):
        raise BadCell(f"{column}: {value!r} is not an id ({IDENTIFIER_TEXT})")
    return value


def instant(row: Row, column: str, ctx: Context, *, end_of_day: bool = False) -> str | None:
    """A date or a date and time; a date alone is the start of that local day (or, for an
    end such as ``valid_until``, its last second). ``2027-06-30`` and ``30-06-2027`` and
    ``30.06.2027`` (as Danish Excel shows it) are all read."""
    value = row.cells.get(column, "")
    if not value:
        return None
    moment: datetime | None = None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        for form in ("%d-%m-%Y", "%d.%m.%Y", "%d/%m/%Y", "%d-%m-%Y %H:%M", "%d.%m.%Y %H:%M"):
            try:
                moment = datetime.strptime(value, form)
                break
            except ValueError:
                continue
    if moment is None:
        raise BadCell(f"{column}: {value!r} is not a date (2027-06-30 or 30-06-2027, with a time if wanted)")
    if moment.year >= 9999:
        return None  # "never expires", as people write it
    date_only = moment.time() == time(0) and len(value) <= 10
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ctx.tz)
    if date_only and end_of_day:
        moment = datetime.combine(moment.date() + timedelta(days=1), time(0), ctx.tz) - timedelta(seconds=1)
    return moment.isoformat()


def association(row: Row, ctx: Context) -> dict[str, Any]:
    name = row.cells.get("name", "")
    if not name:
        raise BadCell("name: empty")
    # ``calendar``: the name the booking system's calendars give it (a category, an organiser)
    return {"id": ident(row, "id"), "name": name, "_calendar": row.cells.get("calendar", "")}


def credential(row: Row, ctx: Context) -> dict[str, Any]:
    role = (row.cells.get("role") or Role.MEMBER).lower()
    if role not in {r.value for r in Role}:
        raise BadCell(f"role: {role!r} is not one of {', '.join(Role)}")
    card = row.cells.get("card", "") or None
    if card is not None:
        try:
            card = cards.normalise(card)
        except cards.CardFormatError as exc:
            raise BadCell(f"card: {exc}") from None
        problem = cards.canonical_problem(card)
        if problem is not None:
            raise BadCell(f"card: {problem}")
    pin, note = _pin(row.cells.get("pin", ""), ctx, has_card=card is not None)
    if card is None and pin is None:
        raise BadCell("card: a credential needs a card or a PIN")
    assoc = ident(row, "association", required=role != Role.CARETAKER)
    if role == Role.CARETAKER and assoc is not None:
        raise BadCell("association: a caretaker belongs to no association")
    valid_from, valid_until = instant(row, "valid_from", ctx), instant(row, "valid_until", ctx, end_of_day=True)
    if valid_from and valid_until and datetime.fromisoformat(valid_until) < datetime.fromisoformat(valid_from):
        raise BadCell("valid_until: before valid_from")
    sites = [s for s in row.cells.get("sites", "").replace(",", " ").split() if s]
    for s in sites:
        if not IDENTIFIER.fullmatch(s):
            raise BadCell(f"sites: {s!r} is not a site id")
    return {
        "id": ident(row, "id"),
        "card": card,
        "pin": pin,
        "association": assoc,
        "role": role,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "_sites": sites,  # caretakers: the sites they look after (not sent to a box)
        "_note": note,  # a problem that did not cost the row (read_sheet reports it)
    }


def _pin(text: str, ctx: Context, *, has_card: bool) -> tuple[str | None, str | None]:
    """The PIN, and a note when the row goes on without it. Digits shorter than the known
    length are a number whose leading zeros Excel dropped: padded back. Unknown length:
    the card still counts, without the PIN (losing the whole row lost the card too)."""
    if not text:
        return None, None
    if text.isdigit() and len(text) < ctx.pin_digits:
        text = text.zfill(ctx.pin_digits)
    if cards.is_pin(text):
        return text, None
    why = "must be 4-8 digits"
    if text.isdigit() and len(text) < 4:
        why += (
            f" ({text!r}: a leading 0 lost when the spreadsheet saved it as a number? Format the pin column as "
            "Text in Excel and type it again, or give [sheets] pin_digits)"
        )
    if not has_card:
        raise BadCell(f"pin: {why}")
    return None, f"pin: {why}; the credential is published with its card and without a PIN"


def room(row: Row, ctx: Context) -> dict[str, Any]:
    doors = [d for d in row.cells.get("doors", "").replace(",", " ").split() if d]
    for d in doors:
        if not IDENTIFIER.fullmatch(d):
            raise BadCell(f"doors: {d!r} is not a door id")
    return {"_site": ident(row, "site"), "id": ident(row, "id"), "name": row.cells.get("name") or "", "doors": doors}


def closure(row: Row, ctx: Context) -> dict[str, Any]:
    start, end = instant(row, "start", ctx), instant(row, "end", ctx, end_of_day=True)
    if start is None or end is None:
        raise BadCell(f"{'start' if start is None else 'end'}: empty")
    if datetime.fromisoformat(end) <= datetime.fromisoformat(start):
        raise BadCell("end: not after start")
    return {
        "_site": ident(row, "site"),
        "room": ident(row, "room", required=False),
        "start": start,
        "end": end,
        "reason": row.cells.get("reason") or "",
    }


COLUMNS = {
    "associations": ("id", "name"),
    "credentials": ("id", "association", "card", "pin", "role"),
    "rooms": ("site", "id", "doors"),
    "closures": ("site", "room", "start", "end"),
}
PARSERS: dict[str, Parser] = {"associations": association, "credentials": credential, "rooms": room, "closures": closure}
#: what makes a row unique in each sheet (a room's id within its site; closures have none)
KEYS: dict[str, tuple[str, ...]] = {"associations": ("id",), "credentials": ("id",), "rooms": ("_site", "id"), "closures": ()}
