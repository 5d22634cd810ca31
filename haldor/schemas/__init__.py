"""JSON Schemas (draft 2020-12) of every message of the protocol, shipped with the package.

They are for the integrators' side: a booking system or a monitor checks what it sends
and reads against them, and the integrator's tools and the tests use this module to do
it here. The agent never imports it (an import-linter contract): it runs on a small Pi
and has its own validator, which also checks what a schema cannot say (references,
duplicates, an end after its start) and names the field it refuses.

The schemas refer to each other by ``$id`` (``urn:haldor:schema:<name>``); the validators
made here resolve those references from the files beside this one, never the network.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError, best_match
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from haldor.protocol import RELEASE_SCHEMA, Leaf, Schema

#: one schema per message, each in ``<name>.schema.json``
NAMES: tuple[str, ...] = (
    "envelope",
    "schedule",
    "delta",
    "command",
    "command-result",
    "event",
    "status",
    "sync-request",
    "resend",
    "resent",
    "alert",
    "release",
)

#: the ``$id`` prefix: ``urn:haldor:schema:schedule``
ID_PREFIX = "urn:haldor:schema:"

_FOLDER = Path(__file__).parent

#: a document's ``schema`` field says which schema describes it
_BY_SCHEMA: dict[str, str] = {
    Schema.SNAPSHOT: "schedule",
    Schema.DELTA: "delta",
    Schema.COMMAND: "command",
    Schema.EVENT: "event",
    Schema.STATUS: "status",
    Schema.RESEND: "resend",
    Schema.RESENT: "resent",
    Schema.ALERT: "alert",
    RELEASE_SCHEMA: "release",
}

#: what travels on each topic: the agent's inputs come signed, so the envelope first
_BY_LEAF: dict[str, str] = {
    Leaf.SCHEDULE: "envelope",
    Leaf.DELTA: "envelope",
    Leaf.CMD: "envelope",
    Leaf.CMD_RESULT: "command-result",
    Leaf.SYNC_REQUEST: "sync-request",
    Leaf.EVENTS: "event",
    Leaf.RESEND: "resend",
    Leaf.RESENT: "resent",
    Leaf.STATUS: "status",
}


def path(name: str) -> Path:
    """The file of schema ``name`` (for a tool that hands it on, or a link)."""
    if name not in NAMES:
        raise KeyError(f"no schema {name!r} (one of {', '.join(NAMES)})")
    return _FOLDER / f"{name}.schema.json"


@cache
def _text(name: str) -> str:
    return path(name).read_text(encoding="utf-8")


def load(name: str) -> dict[str, Any]:
    """Schema ``name`` as parsed JSON (a fresh copy: the caller may change it)."""
    schema: dict[str, Any] = json.loads(_text(name))
    return schema


@cache
def _registry() -> Registry:
    """Every schema under its ``$id``, so that ``$ref`` across files resolves offline."""
    resources = [(f"{ID_PREFIX}{name}", Resource.from_contents(load(name), default_specification=DRAFT202012)) for name in NAMES]
    return Registry().with_resources(resources)


@cache
def validator(name: str) -> Draft202012Validator:
    """A validator for schema ``name``, made once (a snapshot may be validated often)."""
    return Draft202012Validator(load(name), registry=_registry())


def errors(name: str, doc: Any) -> list[str]:
    """Every way ``doc`` violates schema ``name``, one line each, ``"<path>: <message>"``
    (``bookings[3].end: ...``; ``(document)`` at the root), sorted. Empty: it validates."""
    return sorted(_line(_precise(e)) for e in validator(name).iter_errors(doc))


def _precise(error: ValidationError) -> ValidationError:
    """For "a time or null" (``anyOf``), the reason from the one branch of the value's
    type (the time's pattern), not only "not valid under any of the given schemas"."""
    while error.validator in ("anyOf", "oneOf") and error.context:
        branches: dict[Any, list[ValidationError]] = {}
        for e in error.context:
            branches.setdefault(e.relative_schema_path[0], []).append(e)
        fitting = [es for es in branches.values() if not any(e.validator == "type" and not e.relative_path for e in es)]
        if len(fitting) != 1:
            return error
        error = best_match(fitting[0])
    return error


def _line(error: ValidationError) -> str:
    """One line; "none of the forms" says what the schema's ``x-message`` says, never the
    whole value (a credential's card does not belong in a log)."""
    message = error.message
    if error.validator in ("anyOf", "oneOf"):
        said = error.schema.get("x-message") if isinstance(error.schema, dict) else None
        message = said or f"fits none of the {len(error.validator_value)} allowed forms"
    return f"{json_path(error.absolute_path)}: {message}"


def json_path(parts: Iterable[str | int]) -> str:
    """``["bookings", 3, "end"]`` as ``bookings[3].end``, the agent's own spelling."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(document)"


def name_for_schema(schema_id: object) -> str | None:
    """The schema for a document whose ``schema`` field is ``schema_id``, or None. Takes
    whatever the field holds (a document being checked may have a number there)."""
    return _BY_SCHEMA.get(schema_id) if isinstance(schema_id, str) else None


def name_for_leaf(leaf: str) -> str | None:
    """The schema of the payload on a topic ending in ``leaf`` (``events``, ``cmd/result``), or None."""
    return _BY_LEAF.get(leaf)
