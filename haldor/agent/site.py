"""A site's store and policy, as its configuration gives them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from haldor.access.guessing import Limits
from haldor.access.model import Policy
from haldor.config import Config
from haldor.store import Store, secret

if TYPE_CHECKING:  # libsodium is loaded where the key is used (the status, a sealed schedule)
    from nacl.public import PrivateKey


def policy_of(cfg: Config) -> Policy:
    """The configuration's policy: in force until a schedule brings its own."""
    p = cfg.policy
    return Policy(p.grace_before_min, p.grace_after_min, p.no_show_after_min, p.leader_first)


def guessing_limits(cfg: Config) -> Limits:
    """How many wrong PINs and unknown cards a reader takes, and for how long it then refuses."""
    p = cfg.policy
    return Limits(
        max_wrong_pins=p.max_denials,
        max_unknown_cards=p.max_unknown_cards,
        window_s=p.denial_window_s,
        lockout_s=p.denial_lockout_s,
        lockout_max_s=max(p.denial_lockout_max_s, p.denial_lockout_s),
        pin_lockout_blocks_cards=p.pin_lockout_blocks_cards,
    )


def open_store(cfg: Config) -> Store:
    return Store.open(cfg.data_dir, cfg.site_id, cfg.site.timezone, policy_of(cfg))


def site_key(cfg: Config) -> PrivateKey:
    """The box's own key, which schedules are sealed to: made at first use."""
    Path(cfg.data_dir).mkdir(mode=0o700, parents=True, exist_ok=True)  # a box not yet started
    return secret.site_key(cfg.data_dir)
