"""The words of a rollout from the fleet's page (issue 27), Danish first, English second.
A part of :data:`haldor.texts.TEXTS` kept in a file of its own (``texts.py`` merges it)."""

from __future__ import annotations

RELEASE_TEXTS: dict[str, dict[str, str]] = {
    "fleet.releases": {"da": "Opdateringer", "en": "Updates"},
    "fleet.releases_help": {
        "da": "Indsæt det signerede manifest (haldor release sign), hjulets adresse og trinene. Fleeten viser planen, før den starter.",
        "en": "Paste the signed manifest (haldor release sign), the wheel's address and the stages. The fleet shows the plan before it starts.",
    },
    "fleet.releases_viewer": {"da": "Kun en operatør kan starte en udrulning", "en": "Only an operator starts a rollout"},
    "fleet.releases_no_key": {
        "da": "Fleeten har ingen kommandonøgle (--command-key): den kan ikke sende opdateringer",
        "en": "The fleet has no command key (--command-key): it cannot send updates",
    },
    "fleet.releases_manifest": {"da": "Signeret manifest (JSON)", "en": "Signed manifest (JSON)"},
    "fleet.releases_manifest_file": {"da": "... eller manifestets fil", "en": "... or the manifest's file"},
    "fleet.releases_url": {"da": "Hjulets adresse", "en": "The wheel's address"},
    "fleet.releases_stages": {"da": "Trin", "en": "Stages"},
    "fleet.releases_test": {"da": "Testgruppe (steds-id'er)", "en": "Test group (site ids)"},
    "fleet.releases_max_failures": {"da": "Højst fejl pr. trin", "en": "At most failures a stage"},
    "fleet.releases_wait": {"da": "Ventetid pr. trin (s)", "en": "Wait a stage (s)"},
    "fleet.releases_plan": {"da": "Vis planen", "en": "Show the plan"},
    "fleet.releases_start": {"da": "Start udrulningen", "en": "Start the rollout"},
    "fleet.releases_stop": {"da": "Stop udrulningen", "en": "Stop the rollout"},
    "fleet.releases_confirm_stop": {"da": "Stoppe udrulningen?", "en": "Stop the rollout?"},
    "fleet.releases_planned": {
        "da": "Plan for {version}: {count} boks(e) opdateres, {skipped} kører den allerede",
        "en": "Plan for {version}: {count} box(es) to update, {skipped} run it already",
    },
    "fleet.releases_stage": {"da": "Trin", "en": "Stage"},
    "fleet.releases_boxes": {"da": "Bokse", "en": "Boxes"},
    "fleet.releases_versions": {"da": "Boksenes versioner", "en": "The boxes' versions"},
    "fleet.releases_version": {"da": "Version", "en": "Version"},
    "fleet.releases_unknown": {"da": "ukendt", "en": "unknown"},
    "fleet.releases_progress": {"da": "Udrulning af {version}", "en": "Rollout of {version}"},
    "fleet.releases_by": {"da": "startet af {who}", "en": "started by {who}"},
    "fleet.releases_stage_line": {
        "da": "{done} af {count} opdateret, {failed} fejlet, {waiting} venter",
        "en": "{done} of {count} updated, {failed} failed, {waiting} waiting",
    },
    "fleet.releases_skipped": {"da": "{count} kørte den allerede", "en": "{count} ran it already"},
    "fleet.releases_none": {"da": "Ingen udrulning endnu", "en": "No rollout yet"},
    "fleet.rollout.running": {"da": "kører", "en": "running"},
    "fleet.rollout.done": {"da": "færdig: alle bokse kører den nye version", "en": "done: every box runs the new release"},
    "fleet.rollout.failed": {"da": "stoppet efter for mange fejl", "en": "stopped after too many failures"},
    "fleet.rollout.stopped": {"da": "stoppet", "en": "stopped"},
    "fleet.rollout.interrupted": {"da": "afbrudt: fleeten blev stoppet", "en": "cut off: the fleet stopped"},
    "fleet.action.update": {"da": "Opdatering", "en": "Update"},
    "fleet.action.rollout_start": {"da": "Udrulning startet", "en": "Rollout started"},
    "fleet.action.rollout_stage": {"da": "Udrulningstrin", "en": "Rollout stage"},
    "fleet.action.rollout_stop": {"da": "Udrulning stoppet", "en": "Rollout stopped"},
    "fleet.action.rollout_done": {"da": "Udrulning færdig", "en": "Rollout done"},
}
