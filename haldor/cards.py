"""Canonical card strings (PROTOCOL 7): the one place where reader output becomes a card.

The same card must give the same string on every reader. The two classic bugs of
open-source door controllers are byte order and leading zeros that a reader (or an
integer conversion) dropped; both are handled here and nowhere else.
"""

from __future__ import annotations

import re

# Every pattern here is used with fullmatch: ``$`` would also match before a final newline.
_HEX = re.compile(r"[0-9A-F]+")
_PIN = re.compile(r"[0-9]{4,8}")
#: ISO 14443 UIDs are 4, 7 or 10 bytes long.
_UID_HEX_LENGTHS = (8, 14, 20)
_UID_CARD = re.compile(r"uid:([0-9A-F]+)")
_WIEGAND = re.compile(r"wg[0-9]{1,3}:[0-9]+")
#: What a schedule may contain: only strings a reader can produce.
# a reader's Wiegand string has no leading zeros (normalise drops them): "wg026:" never matches a read
_CANONICAL = re.compile(r"uid:(?:[0-9A-F]{8}|[0-9A-F]{14}|[0-9A-F]{20})|em:[0-9A-F]{10}|wg[1-9][0-9]{0,2}:(?:0|[1-9][0-9]*)")
_CANONICAL_FORMS = "uid:<HEX>, em:<10 HEX>, wg<N>:<DECIMAL>"


class CardFormatError(ValueError):
    """What a reader sent is not a card."""


def canonical_problem(card: str) -> str | None:
    """Why ``card`` cannot stand in a schedule (None when it is canonical).

    Stricter than what :func:`normalise` accepts from a reader or a person: a credential's
    card must equal a string some reader produces, so a ``uid:`` that is not 4, 7 or 10
    bytes, which no card sends, is refused here rather than stored and never matched.
    """
    if _CANONICAL.fullmatch(card):
        if card.startswith("wg"):
            bits, value = (int(x) for x in card[2:].split(":"))
            if bits < 3 or value >= 2 ** (bits - 2):
                return f"not a canonical card string: a {bits}-bit Wiegand frame carries {max(bits - 2, 0)} data bits, too few for {value}"
        return None
    uid = _UID_CARD.fullmatch(card)
    if uid:
        digits = len(uid.group(1))
        size = f"{digits // 2} bytes" if digits % 2 == 0 else f"{digits} hex digits"
        return f"not a canonical card string: a uid is 4, 7 or 10 bytes (8, 14 or 20 hex digits), not {size}"
    return f"not a canonical card string ({_CANONICAL_FORMS})"


def is_canonical(card: str) -> bool:
    """True when ``card`` is a canonical card string a credential may hold."""
    return canonical_problem(card) is None


def is_pin(text: str) -> bool:
    return bool(_PIN.fullmatch(text))


def uid_from_hex(text: str, byte_order: str = "as-read") -> str:
    """Turn reader hex into ``uid:<HEX>``, restoring dropped leading zeros.

    Zeros are put back up to the next real UID length (4, 7 or 10 bytes) before the
    byte order is reversed, because a reader drops them from what it prints.
    """
    digits = re.sub(r"[\s:-]", "", text).upper()
    if not digits or not _HEX.fullmatch(digits):
        raise CardFormatError("not hexadecimal")
    if len(digits) > _UID_HEX_LENGTHS[-1]:
        raise CardFormatError("longer than a 10-byte UID")
    width = next(n for n in _UID_HEX_LENGTHS if n >= len(digits))
    digits = digits.rjust(width, "0")
    if byte_order == "reversed":
        digits = "".join(reversed([digits[i : i + 2] for i in range(0, len(digits), 2)]))
    elif byte_order != "as-read":
        raise ValueError(f"byte_order must be 'as-read' or 'reversed', not {byte_order!r}")
    return "uid:" + digits


def reversed_uid(card: str) -> str | None:
    """The same UID read in the other byte order (for enrolment help), or None."""
    if not card.startswith("uid:"):
        return None
    return uid_from_hex(card[4:], "reversed")


def normalise(text: str, byte_order: str = "as-read") -> str:
    """Read a card as a reader or a person typed it: canonical, ``uid:`` or bare hex."""
    raw = text.strip()
    lower = raw.lower()
    if lower.startswith("uid:"):
        return uid_from_hex(raw[4:], byte_order)
    if lower.startswith("em:"):
        digits = raw[3:].strip().upper()
        if len(digits) != 10 or not _HEX.fullmatch(digits):
            raise CardFormatError("an EM4100 tag is 10 hex digits")
        return "em:" + digits
    if lower.startswith("wg"):
        card = raw.lower()
        if not _WIEGAND.fullmatch(card):
            raise CardFormatError("a Wiegand card is wg<bits>:<decimal>")
        bits, value = card[2:].split(":")
        return f"wg{int(bits)}:{int(value)}"
    return uid_from_hex(raw, byte_order)
