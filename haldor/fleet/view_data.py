"""What a view of the fleet shows, read from one store."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from .commands import AuditLog
from .report import UsageLine, site_rows
from .store import FleetStore
from .view import View


class ViewData:
    """What a view shows, read from one store: the server's (pages, under its lock) or a
    download's own connection (a large spreadsheet never holds the pages up)."""

    def __init__(self, store: FleetStore, zone: str) -> None:
        self.store, self.zone = store, zone
        self.audit = AuditLog(store.db)

    def sites(self, now: float, unsure_before: float | None = None) -> list[dict[str, Any]]:
        return site_rows(self.store.sites(), now, unsure_before)

    def zone_of(self, view: View, sites: list[dict[str, Any]]) -> str:
        site = next((s for s in sites if s["site"] == view.site), None)
        return (site or {}).get("timezone") or self.zone

    def usage(
        self, view: View, sites: list[dict[str, Any]], *, association: str | None = None, limit: int | None = None
    ) -> list[UsageLine]:
        """Names of rooms from the box's status where its usage carried none (older boxes)."""
        names = {s["site"]: s["name"] for s in sites}
        lines = self.store.weekly_usage(view.period, view.site or None, names, association=association, limit=limit)
        rooms = {s["site"]: s.get("rooms", {}) for s in sites}
        return [
            replace(u, room_name=rooms.get(u.site, {}).get(u.room) or u.room_name) if u.room_name == u.room else u for u in lines
        ]

    def access(self, view: View, site: dict[str, Any] | None, limit: int | None) -> list[dict[str, Any]]:
        since, until = view.period.instants((site or {}).get("timezone") or self.zone)
        return self.store.access_log(view.site or None, view.door or None, since, until, limit)
