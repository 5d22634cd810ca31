"""Reading the municipality's TOML files (the bridge's, the fleet's) the way the agent
reads its own: known keys of the right types with their defaults, and a fault as one
line naming the file and the key."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from haldor.errors import ConfigError


def read(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


class Checker:
    def __init__(self, path: str) -> None:
        self.path = path
        self.base = Path(path).parent

    def fail(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"{self.path}: {key}: {problem}")

    def checked(self, given: Any, keys: dict[str, Any], where: str) -> dict[str, Any]:
        """Known keys of the right types, with their defaults (a default of None takes anything)."""
        if not isinstance(given, dict):
            raise self.fail(where, "expected a table")
        for key, value in given.items():
            if key not in keys:
                raise self.fail(f"{where}.{key}", "unknown key")
            default = keys[key]
            ok = isinstance(value, type(default)) and not (isinstance(value, bool) and not isinstance(default, bool))
            if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
                ok = True
            if default is not None and not ok:
                raise self.fail(f"{where}.{key}", f"expected {type(default).__name__}, got {value!r}")
        return {**keys, **given}

    def section(self, raw: dict[str, Any], name: str, keys: dict[str, Any]) -> dict[str, Any]:
        return self.checked(raw.get(name, {}), keys, name)

    def tables(self, raw: dict[str, Any], name: str) -> list[dict[str, Any]]:
        tables = raw.get(name, [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            raise self.fail(name, f"expected [[{name}]] tables")
        return tables

    def only(self, raw: dict[str, Any], names: tuple[str, ...]) -> None:
        for name in raw:
            if name not in names:
                raise self.fail(name, "unknown section")

    def resolve(self, value: str) -> str:
        """A path relative to the configuration file; URLs as they are."""
        if "://" in value:
            return value
        return str((self.base / value).resolve()) if not Path(value).is_absolute() else value
