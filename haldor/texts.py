"""Every text a person reads, Danish first, English second, in one table.

The kiosk page and the demo prompt both take their words from here, so a
translation is changed in one place and no screen is left half-translated.
"""

from __future__ import annotations

LANGUAGES = ("da", "en")

TEXTS: dict[str, dict[str, str]] = {
    # decisions (PROTOCOL 5 reasons)
    "granted": {"da": "Adgang givet", "en": "Access granted"},
    "denied": {"da": "Afvist", "en": "Access denied"},
    "reason.unknown_card": {"da": "Ukendt kort", "en": "Unknown card"},
    "reason.wrong_pin": {"da": "Forkert PIN-kode", "en": "Wrong PIN"},
    "reason.no_booking": {"da": "Ingen booking nu", "en": "No booking now"},
    "reason.outside_window": {"da": "Jeres booking er på et andet tidspunkt i dag", "en": "Your booking is at another time today"},
    "reason.closed": {"da": "Lokalet er lukket", "en": "The room is closed"},
    "reason.expired": {"da": "Kortet er udløbet eller ikke gyldigt endnu", "en": "The card has expired or is not valid yet"},
    "reason.lockdown": {"da": "Bygningen er låst ned", "en": "The building is in lockdown"},
    "reason.clock_untrusted": {"da": "Uret er ikke sikkert; kun pedellen kan komme ind", "en": "The clock is not trusted; only the caretaker may enter"},
    "reason.rate_limited": {"da": "For mange forsøg; vent et minut", "en": "Too many attempts; wait a minute"},
    # locks
    "lock.unlocked": {"da": "låst op", "en": "unlocked"},
    "lock.locked": {"da": "låst", "en": "locked"},
    # roles
    "role.member": {"da": "medlem", "en": "member"},
    "role.leader": {"da": "leder", "en": "leader"},
    "role.caretaker": {"da": "pedel", "en": "caretaker"},
    # the demo prompt
    "demo.title": {"da": "Haldor demo: simuleret dørstyring", "en": "Haldor demo: simulated door control"},
    "demo.help": {
        "da": "Skriv et kort eller en PIN-kode (evt. med dør foran: 'gym-a 2468'). 'q' afslutter.",
        "en": "Type a card or a PIN (optionally with a door first: 'gym-a 2468'). 'q' quits.",
    },
    "demo.cards": {"da": "Prøv disse kort og koder", "en": "Try these cards and codes"},
    "demo.doors": {"da": "Døre", "en": "Doors"},
    "demo.bad_input": {"da": "Hverken kort eller PIN-kode", "en": "Neither a card nor a PIN"},
    "demo.no_answer": {"da": "Intet svar fra agenten", "en": "No answer from the agent"},
    "demo.unknown_door": {"da": "Ukendt dør", "en": "Unknown door"},
    "demo.bye": {"da": "Demo slut; alle låse i sikker tilstand", "en": "Demo over; every lock in its safe state"},
    "demo.booking_pin": {"da": "bookingens PIN-kode", "en": "the booking's PIN"},
    "demo.unknown": {"da": "et kort systemet ikke kender", "en": "a card the system does not know"},
}


def t(key: str, language: str = "da") -> str:
    """The text for ``key`` in ``language``, falling back to Danish."""
    entry = TEXTS[key]
    return entry.get(language) or entry["da"]


def both(key: str) -> str:
    """Danish first, English after: for places with no language setting (the demo prompt)."""
    return f"{t(key, 'da')} / {t(key, 'en')}"


def reason(code: str, language: str = "da") -> str:
    return t(f"reason.{code}", language)
