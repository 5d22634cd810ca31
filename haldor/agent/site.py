"""A site's store and policy, as its configuration gives them."""

from __future__ import annotations

from pathlib import Path

from nacl.public import PrivateKey

from haldor.access.model import Policy
from haldor.access.store import Store, secret
from haldor.config import Config


def policy_of(cfg: Config) -> Policy:
    """The configuration's policy: in force until a schedule brings its own."""
    p = cfg.policy
    return Policy(p["grace_before_min"], p["grace_after_min"], p["no_show_after_min"], p["leader_first"])


def open_store(cfg: Config) -> Store:
    return Store.open(cfg.data_dir, cfg.site_id, cfg.site["timezone"], policy_of(cfg))


def site_key(cfg: Config) -> PrivateKey:
    """The box's own key, which schedules are sealed to: made at first use."""
    Path(cfg.data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)  # a box not yet started
    return secret.site_key(cfg.data_dir)
