"""Canonical card strings and PINs as a schedule may contain them (PROTOCOL 2, 7)."""

import pytest

from haldor import cards


@pytest.mark.parametrize(
    "card", ["uid:04A1B2C3", "uid:04A1B2C3D4E5F6", "uid:04A1B2C3D4E5F60708A9", "em:0A0B0C0D0E", "wg26:8405024"]
)
def test_canonical(card):
    assert cards.is_canonical(card)


@pytest.mark.parametrize(
    "card",
    [
        "uid:04A1B2C3\n",
        "uid:04A1B2C3D4E5F6\n",
        "em:0A0B0C0D0E\n",
        "wg26:8405024\n",  # trailing newline
        "uid:04a1b2c3",
        "em:0A0B0C0D0",
        "wg26:",
        "04A1B2C3",
        " uid:04A1B2C3",
        "uid:",
        "uid:04",
        "uid:04A1B2",
        "uid:04A1B2C3D4",
        "uid:04A1B2C3D",
        "uid:04A1B2C3D4E5F60708A9B0",  # no ISO 14443 size
    ],
)
def test_not_canonical(card):
    assert not cards.is_canonical(card)


@pytest.mark.parametrize(
    "pin, ok", [("4821", True), ("12345678", True), ("4821\n", False), ("123", False), ("123456789", False), ("48 21", False)]
)
def test_pin(pin, ok):
    assert cards.is_pin(pin) is ok


def test_a_reader_line_with_its_newline_still_reads():
    """normalise strips what a reader sends around a card: only a schedule must be exact."""
    assert cards.normalise("uid:04A1B2C3\r\n") == "uid:04A1B2C3"
    assert cards.normalise("em:0a0b0c0d0e\n") == "em:0A0B0C0D0E"
    assert cards.normalise("wg26:8405024\n") == "wg26:8405024"


@pytest.mark.parametrize(
    "card, problem",
    [
        ("uid:04A1B2C3D4", "a uid is 4, 7 or 10 bytes (8, 14 or 20 hex digits), not 5 bytes"),
        ("uid:04A1B2C3D", "a uid is 4, 7 or 10 bytes (8, 14 or 20 hex digits), not 9 hex digits"),
        ("mf:1234", "not a canonical card string (uid:<HEX>, em:<10 HEX>, wg<N>:<DECIMAL>)"),
    ],
)
def test_canonical_problem_says_why(card, problem):
    assert problem in cards.canonical_problem(card)
    assert cards.canonical_problem("uid:04A1B2C3") is None


@pytest.mark.parametrize(
    "text, canonical",
    [("04A1B2C3D4", "uid:000004A1B2C3D4"), ("uid:04A1B2C3D4", "uid:000004A1B2C3D4"), ("A1B2C3D4E5F607", "uid:A1B2C3D4E5F607")],
)
def test_a_reader_never_produces_a_uid_a_schedule_would_refuse(text, canonical):
    """A 5-byte read is a reader matter (padded to the next real size), not refused."""
    assert cards.normalise(text) == canonical
    assert cards.is_canonical(canonical)


def test_a_wiegand_card_must_fit_its_bits():
    assert cards.is_canonical("wg26:16777215")
    assert "too few for 16777216" in cards.canonical_problem("wg26:16777216")
    assert not cards.is_canonical("wg2:0") and cards.is_canonical("wg99:5")
