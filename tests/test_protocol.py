"""Every protocol name is spelt once (haldor.protocol), has its words, and no module
spells one on its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from haldor import protocol
from haldor.texts import LANGUAGES, TEXTS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("prefix, names", [("reason", protocol.Reason), ("event", protocol.Event)])
def test_every_denial_reason_and_event_type_has_danish_and_english_words(prefix, names):
    for name in names:
        entry = TEXTS.get(f"{prefix}.{name}")
        assert entry is not None, f"texts.py has no {prefix}.{name}"
        assert all(entry.get(language) for language in LANGUAGES), f"{prefix}.{name} lacks a language"


def test_no_module_spells_an_event_type_or_schema_of_its_own():
    """A quoted event type or schema id outside protocol.py is a second spelling."""
    names = [e.value for e in protocol.Event if "." in e.value] + [s.value for s in protocol.Schema]
    pattern = re.compile("[\"'](" + "|".join(re.escape(n) for n in names) + ")[\"']")
    found = []
    for path in sorted((ROOT / "haldor").rglob("*.py")):
        if path.name in ("protocol.py", "texts.py"):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


def test_denial_precedence_names_only_denial_reasons():
    assert set(protocol.DENIAL_PRECEDENCE) <= set(protocol.Reason)
