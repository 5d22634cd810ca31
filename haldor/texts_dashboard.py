"""The fleet dashboard's words, Danish first, English second: a part of :data:`haldor.texts.TEXTS`
kept in a file of its own (``texts.py`` merges it), so each file stays readable."""

from __future__ import annotations

DASHBOARD_TEXTS: dict[str, dict[str, str]] = {
    "fleet.dash.title": {"da": "Overblik for perioden", "en": "The period at a glance"},
    "fleet.dash.booked": {"da": "Bookede timer", "en": "Booked hours"},
    "fleet.dash.used": {"da": "Brugte timer", "en": "Used hours"},
    "fleet.dash.share": {"da": "Andel brugt", "en": "Share used"},
    "fleet.dash.unused": {"da": "Ubrugte timer", "en": "Unused hours"},
    "fleet.dash.no_shows": {"da": "Udeblivelser", "en": "No-shows"},
    "fleet.dash.closed": {"da": "Bookinger i lukkede lokaler", "en": "Bookings in closed rooms"},
    "fleet.dash.unobserved": {"da": "Bookinger uden opsyn", "en": "Unobserved bookings"},
    "fleet.dash.online": {"da": "Steder online", "en": "Sites online"},
    "fleet.dash.of": {"da": "af", "en": "of"},
    "fleet.dash.bookings": {"da": "bookinger", "en": "bookings"},
    "fleet.dash.chart": {"da": "Bookede og brugte timer pr. uge", "en": "Booked and used hours per week"},
    "fleet.dash.last_season": {"da": "brugt sidste sæson", "en": "used last season"},
    "fleet.dash.chart_table": {"da": "Diagrammets tal som tabel", "en": "The chart's figures as a table"},
    "fleet.dash.last_booked": {"da": "Booket sidste sæson (timer)", "en": "Booked last season (hours)"},
    "fleet.dash.last_used": {"da": "Brugt sidste sæson (timer)", "en": "Used last season (hours)"},
    "fleet.dash.no_usage": {"da": "Ingen bookinger i perioden.", "en": "No bookings in the period."},
    "fleet.dash.sites": {"da": "Stederne, dem der kræver opmærksomhed først", "en": "The sites, those needing attention first"},
    "fleet.dash.state.ok": {"da": "I orden", "en": "All well"},
    "fleet.dash.state.warn": {"da": "Bør ses efter", "en": "Needs a look"},
    "fleet.dash.state.bad": {"da": "Ikke hørt fra", "en": "Not heard from"},
    "fleet.dash.why.unknown": {"da": "ukendt: flåden mistede forbindelsen", "en": "unknown: the fleet lost the broker"},
    "fleet.dash.why.silent": {"da": "svarer ikke", "en": "not answering"},
    "fleet.dash.why.offline": {"da": "offline", "en": "offline"},
    "fleet.dash.why.reader": {"da": "fejl på en læser", "en": "a reader fault"},
    "fleet.dash.why.events": {"da": "hændelser mangler", "en": "events missing"},
    "fleet.dash.why.outbox": {"da": "lang kø af hændelser", "en": "a long queue of events"},
    "fleet.dash.why.schedule": {"da": "skemaet er gammelt eller mangler", "en": "the schedule is old or missing"},
    "fleet.dash.why.lockdown": {"da": "nedlukning", "en": "lockdown"},
}
