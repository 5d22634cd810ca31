"""A site's store and policy, as its configuration gives them."""

from __future__ import annotations

from haldor.access.model import Policy
from haldor.access.store import Store
from haldor.config import Config


def policy_of(cfg: Config) -> Policy:
    """The configuration's policy: in force until a schedule brings its own."""
    p = cfg.policy
    return Policy(p["grace_before_min"], p["grace_after_min"], p["no_show_after_min"], p["leader_first"])


def open_store(cfg: Config) -> Store:
    return Store.open(cfg.data_dir, cfg.site_id, cfg.site["timezone"], policy_of(cfg))
