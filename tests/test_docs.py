"""The README is part of the product: its configuration reference and first lines are checked."""

from __future__ import annotations

import re
from pathlib import Path

from haldor import config

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else None]


def test_every_configuration_key_is_documented_and_nothing_else():
    documented = set(re.findall(r"^\| `([a-z_]+\.[a-z0-9_]+)` \|", _section("Configuration"), re.MULTILINE))
    assert documented == set(config.documented_keys())


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
