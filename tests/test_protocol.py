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


DOC = (ROOT / "docs" / "protocol.md").read_text()


def _section(title: str) -> str:
    start = DOC.index(title)
    end = DOC.find("\n## ", start + len(title))
    return DOC[start : end if end != -1 else len(DOC)]


def _ticked(text: str) -> set[str]:
    return set(re.findall(r"`([^`]+)`", text))


def _first_column(table: str) -> set[str]:
    return {name for row in re.findall(r"^\| ([^|]+) \|", table, re.MULTILINE) for name in _ticked(row)}


def test_the_reference_names_every_topic_event_reason_action_role_and_mode_and_no_other():
    assert {t.removeprefix("P/S/") for t in _first_column(_section("## 1. Topics"))} == {leaf.value for leaf in protocol.Leaf}
    events = _first_column(_section("## 5. Events").split("Event types")[1])
    assert events == {e.value for e in protocol.Event}
    denials = _section("### Denial reasons")
    assert _ticked(denials.split("When a\ncard")[0]) == {r.value for r in protocol.Reason}
    ranked = re.findall(r"`([a-z_]+)`", denials.split("got furthest is reported:")[1])
    assert tuple(ranked) == tuple(protocol.DENIAL_PRECEDENCE)
    commands = _section("## 4. Commands")
    actions = commands[commands.index("Actions on one door") : commands.index("A command is refused")]
    assert _ticked(actions) - {"door", "duration_s", "sync/request", '"have_version": null'} == {a.value for a in protocol.Action}
    roles = re.search(r"`role` is one of ([^.]+)\.", DOC)
    assert roles and _ticked(roles.group(1)) == {r.value for r in protocol.Role}
    modes = re.search(r"A door's mode is one of ([^;]+);", DOC)
    assert modes and _ticked(modes.group(1)) == {m.value for m in protocol.Mode}
    for schema in protocol.Schema:
        assert f'"{schema.value}"' in DOC, schema


def test_no_file_refers_to_a_protocol_document_that_is_not_there():
    for path in [ROOT / "README.md", ROOT / "pyproject.toml", *(ROOT / "config").rglob("*"), *(ROOT / "haldor").rglob("*.py")]:
        if path.is_file():
            text = path.read_text(errors="replace")
            assert "PROTOCOL.md" not in text and "DESIGN.md" not in text, path
