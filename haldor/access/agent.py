"""Builds the agent from the configuration and runs its one decision loop."""

from __future__ import annotations

from haldor.config import Config

from .model import Policy
from .store import Store


def open_store(cfg: Config) -> Store:
    p = cfg.policy
    policy = Policy(p["grace_before_min"], p["grace_after_min"], p["no_show_after_min"], p["leader_first"])
    return Store.open(cfg.data_dir, cfg.site_id, cfg.site["timezone"], policy)
