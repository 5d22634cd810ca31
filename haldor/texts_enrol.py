"""The words of enrolment and revocation (issue 27), Danish first, English second: the
fleet's register page and `haldor enrol` on a box. A part of :data:`haldor.texts.TEXTS`
kept in a file of its own (``texts.py`` merges it)."""

from __future__ import annotations

ENROL_TEXTS: dict[str, dict[str, str]] = {
    "fleet.role.registrar": {"da": "registrator", "en": "registrar"},
    # the register of boxes (issue 27): enrolment and revocation from the page
    "fleet.register": {"da": "Bokse", "en": "Boxes"},
    "fleet.register_help": {
        "da": "Opret et sted, og skriv koden på boksen: haldor enrol ADRESSE KODE. Koden vises én gang, gælder et døgn og kun én gang.",
        "en": "Create a site, and type the code on its box: haldor enrol ADDRESS CODE. The code is shown once, valid a day and once only.",
    },
    "fleet.register_admin_only": {
        "da": "Kun en registrator kan oprette og tilbagekalde bokse",
        "en": "Only a registrar creates and revokes boxes",
    },
    "fleet.register_off": {
        "da": "Tilmelding er slået fra: fleet.toml har ingen [enrolment]",
        "en": "Enrolment is off: fleet.toml has no [enrolment]",
    },
    "fleet.register_add": {"da": "Opret sted", "en": "Create site"},
    "fleet.register_site": {"da": "Steds-id", "en": "Site id"},
    "fleet.register_name": {"da": "Navn", "en": "Name"},
    "fleet.register_zone": {"da": "Tidszone", "en": "Time zone"},
    "fleet.register_profile": {"da": "Udstyr", "en": "Hardware"},
    "fleet.register_state": {"da": "Tilstand", "en": "State"},
    "fleet.register.waiting": {"da": "venter på boksen", "en": "waiting for its box"},
    "fleet.register.enrolled": {"da": "tilmeldt", "en": "enrolled"},
    "fleet.register.unheard": {
        "da": "svar sendt til boksen, intet hørt fra den endnu",
        "en": "answer sent to the box, nothing heard from it yet",
    },
    "fleet.register.revoked": {"da": "tilbagekaldt", "en": "revoked"},
    "fleet.register_code": {
        "da": "Tilmeldingskode for {site} (vises kun nu; gælder 24 timer, én gang):",
        "en": "Enrolment code for {site} (shown only now; valid 24 hours, once):",
    },
    "fleet.register_new_code": {"da": "Ny kode", "en": "New code"},
    "fleet.register_revoke": {"da": "Tilbagekald boksen", "en": "Revoke the box"},
    "fleet.confirm_revoke": {
        "da": "Tilbagekald boksen? Den mister forbindelsen med det samme og kan ikke komme på igen.",
        "en": "Revoke the box? It loses its connection at once and cannot come back.",
    },
    "fleet.action.site_added": {"da": "Sted oprettet", "en": "Site created"},
    "fleet.action.new_code": {"da": "Ny tilmeldingskode", "en": "New enrolment code"},
    "fleet.action.enrolled": {"da": "Boks tilmeldt", "en": "Box enrolled"},
    "fleet.action.revoke": {"da": "Tilbagekald boks", "en": "Revoke box"},
    "fleet.action.revoke_failed": {"da": "Tilbagekaldelse mislykkedes", "en": "Revocation failed"},
    # haldor enrol on a box, and the fleet's refusals
    "enrol.code_unknown": {
        "da": "ukendt kode (skrevet forkert, eller fra en anden kommune)",
        "en": "unknown code (mistyped, or another municipality's)",
    },
    "enrol.code_used": {"da": "koden er allerede brugt", "en": "the code has been used"},
    "enrol.code_expired": {
        "da": "koden er udløbet (den gælder et døgn): bed om en ny",
        "en": "the code has expired (valid a day): ask for a new one",
    },
    "enrol.code_void": {
        "da": "koden er fra før stedets boks sidst blev tilmeldt: bed om en ny",
        "en": "the code is from before the site's box last enrolled: ask for a new one",
    },
    "enrol.blocked": {
        "da": "for mange forkerte koder herfra: prøv igen senere",
        "en": "too many wrong codes from here: try again later",
    },
    "enrol.site_enrolled": {"da": "stedet har allerede en tilmeldt boks", "en": "the site already has an enrolled box"},
    "enrol.data_enrolled": {
        "da": "datamappen er allerede tilmeldt; intet er overskrevet",
        "en": "the data folder is already enrolled; nothing was overwritten",
    },
    "enrol.bad_request": {"da": "fleet'en forstod ikke forespørgslen", "en": "the fleet did not understand the request"},
    "enrol.broker": {
        "da": "brokeren tog ikke imod boksens login; intet er ændret",
        "en": "the broker did not take the box's login; nothing was changed",
    },
    "enrol.unreachable": {"da": "fleet'en kan ikke nås", "en": "the fleet cannot be reached"},
    "enrol.done": {"da": "tilmeldt", "en": "enrolled"},
}
