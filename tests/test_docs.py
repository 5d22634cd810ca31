"""The README is part of the product: its configuration reference and first lines are checked."""

from __future__ import annotations

import re
from pathlib import Path

from haldor import config
from haldor.protocol import Event

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
PROTOCOL = (ROOT / "docs" / "protocol.md").read_text(encoding="utf-8")


def _section(text: str, title: str) -> str:
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def test_every_configuration_key_is_documented_and_nothing_else():
    documented = re.findall(r"^\| `([a-z_]+\.[a-z0-9_]+)` \|", _section(PROTOCOL, "9. Configuration file"), re.MULTILINE)
    assert sorted(documented) == sorted(config.documented_keys())


def test_every_key_the_docs_name_exists():
    """`mqtt.topic_prefix` in running text must be a key too, in every document."""
    known = set(config.documented_keys())
    sections = {key.split(".")[0] for key in known}
    not_keys = {e.value for e in Event}  # event types look alike: `sync.applied`
    for name, text in (("README.md", README), ("docs/protocol.md", PROTOCOL)):
        named = re.findall(r"`([a-z_]+\.[a-z0-9_]+)`", text)
        named = {
            m
            for m in named
            if m.split(".")[0] in sections
            and m not in not_keys
            and not m.endswith((".py", ".key", ".pub", ".db", ".toml", ".json"))
        }
        assert named <= known, (name, named - known)


def test_relative_links_lead_to_files_that_exist():
    for doc in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).exists(), f"{doc.name}: {target}"


def test_the_first_lines_are_the_demo_and_the_test_command():
    commands = [line.strip() for line in README.splitlines()[1:4] if line.startswith("    ")]
    assert len(commands) == 2
    assert commands[0].endswith("haldor demo")
    assert all(tool in commands[1] for tool in ("pytest", "lint-imports", "ruff check", "ruff format --check", "mypy"))


def test_the_ci_script_runs_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text()
    assert "grep -m1 -E '^    .*pytest' README.md" in script


def test_the_example_configuration_is_valid(tmp_path):
    cfg = config.load(ROOT / "config" / "haldor.toml")
    assert cfg.site_id == "valby-skole" and len(cfg.doors) == 2


def test_paths_the_docs_name_exist():
    """`bench/bench_readers.py` in running text is a file of this repository."""
    for doc in (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))):
        text = doc.read_text(encoding="utf-8")
        for path in re.findall(r"`((?:bench|haldor|tests|config|systemd|docs)/[\w./-]*)`", text):
            if path != "haldor/v1":  # the topic prefix, not a folder
                assert (ROOT / path.rstrip("/")).exists(), f"{doc.name}: {path}"


def test_every_module_is_named_where_things_are():
    """README's "Where things are" names every module, so a new reader finds each one."""
    text = _section(README, "Where things are")
    named = set(re.findall(r"`([\w./]+)`", text))
    words = {w for name in named for w in re.split(r"[./]", name)}
    modules = {p.stem for p in (ROOT / "haldor").rglob("*.py") if p.stem not in ("__init__", "__main__")}
    assert sorted(modules - words) == []
