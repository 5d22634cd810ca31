"""A staged rollout's pure parts, shared by `haldor release rollout` and the fleet's
``/releases`` page: which sites each stage holds, and what a site's answer and status
say about its update. No broker, no clock: both callers bring what they heard."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from haldor.access.release import newer, version_key
from haldor.errors import DocumentError

#: the stages when none are given
DEFAULT_STAGES = ("test", "10%", "all")


def plan(versions: dict[str, str | None], target: str, stages: Sequence[str], test_sites: Sequence[str]) -> list[list[str]]:
    """The sites of each stage: ``test`` (the test group), ``N%`` (that share of every site
    to update, counted with the stages before), ``all`` (the rest). A site that runs the
    target or newer is left out; one whose version is unknown is updated."""
    todo = sorted(s for s, v in versions.items() if v is None or not at_least(v, target))
    left, done, planned = list(todo), 0, []
    for stage in stages:
        if stage == "test":
            unknown = [s for s in test_sites if s not in versions]
            if unknown:
                raise DocumentError(f"--test: no status from {', '.join(unknown)}")
            chosen = [s for s in test_sites if s in left]
        elif stage == "all":
            chosen = list(left)
        elif stage.endswith("%") and stage[:-1].isdigit() and 0 < int(stage[:-1]) <= 100:
            chosen = left[: max(0, math.ceil(len(todo) * int(stage[:-1]) / 100) - done)]
        else:
            raise DocumentError(f"--stages: {stage!r} is not test, N% or all")
        left = [s for s in left if s not in chosen]
        done += len(chosen)
        planned.append(chosen)
    return planned


def at_least(version: str, target: str) -> bool:
    """The site runs ``target`` or newer."""
    try:
        return not newer(target, version)
    except DocumentError:  # a version this scheme cannot read is not known to be new enough
        return False


def outcome(result: Mapping[str, Any] | None, version: str | None, target: str) -> str | None:
    """A site's update from its answer and its status's version. None: done (it answered
    ok and its status says ``target``); "": not yet; else why it failed (refused, rolled back)."""
    if result is None:
        return ""
    if not result.get("ok"):
        return str(result.get("error"))
    return None if version is not None and version_key(version) == version_key(target) else ""


def names(text: str) -> list[str]:
    """A comma-separated list (``test,10%,all``, ``valby-skole,ishoj-hallen``), blanks dropped."""
    return [s.strip() for s in text.split(",") if s.strip()]


def checked(stages: Sequence[str], test_sites: Sequence[str]) -> None:
    """Stages that can be planned: the stage ``test`` needs its sites."""
    if not stages:
        raise DocumentError("--stages: at least one of test, N% or all")
    if "test" in stages and not test_sites:
        raise DocumentError("--test: the test group's sites (the stage 'test' needs them)")


def version_order(version: str | None) -> tuple[int, tuple[int, ...], str]:
    """Versions by their numbers (0.10.0 after 0.9.0), one the scheme cannot read after them, unknown last."""
    if version is None:
        return (2, (), "")
    try:
        return (0, version_key(version), version)
    except DocumentError:
        return (1, (), version)
