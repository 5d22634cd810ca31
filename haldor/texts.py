"""Every text a person reads, Danish first, English second, in one table.

The kiosk page and the demo prompt both take their words from here, so a
translation is changed in one place and no screen is left half-translated.
"""

from __future__ import annotations

from .texts_dashboard import DASHBOARD_TEXTS
from .texts_enrol import ENROL_TEXTS
from .texts_releases import RELEASE_TEXTS

LANGUAGES = ("da", "en")

TEXTS: dict[str, dict[str, str]] = {
    # decisions (PROTOCOL 5 reasons)
    "granted": {"da": "Adgang givet", "en": "Access granted"},
    "denied": {"da": "Afvist", "en": "Access denied"},
    "reason.unknown_card": {"da": "Ukendt kort", "en": "Unknown card"},
    "reason.wrong_pin": {"da": "Forkert PIN-kode", "en": "Wrong PIN"},
    "reason.no_booking": {"da": "Ingen booking lige nu", "en": "No booking now"},
    "reason.outside_window": {
        "da": "Jeres booking er på et andet tidspunkt i dag",
        "en": "Your booking is at another time today",
    },
    "reason.closed": {"da": "Lokalet er lukket", "en": "The room is closed"},
    "reason.expired": {"da": "Kortet er udløbet eller endnu ikke gyldigt", "en": "The card has expired or is not valid yet"},
    "reason.lockdown": {"da": "Nedlukning: kun pedellen kan komme ind", "en": "Lockdown: only the caretaker can get in"},
    "reason.clock_untrusted": {
        "da": "Uret går muligvis forkert. Kun pedellen kan komme ind",
        "en": "The clock may be wrong. Only the caretaker can get in",
    },
    "reason.rate_limited": {
        "da": "For mange forsøg. Vent lidt, og prøv igen",
        "en": "Too many tries. Wait a while and try again",
    },
    # events (PROTOCOL 5 types): what the fleet and the logs call them
    "event.access.granted": {"da": "Adgang givet", "en": "Access granted"},
    "event.access.denied": {"da": "Adgang nægtet", "en": "Access denied"},
    "event.access.guessing": {"da": "Mange forkerte PIN-koder eller ukendte kort", "en": "Many wrong PINs or unknown cards"},
    "event.door.opened": {"da": "Dør åbnet", "en": "Door opened"},
    "event.door.closed": {"da": "Dør lukket", "en": "Door closed"},
    "event.door.forced": {"da": "Dør åbnet uden tilladelse", "en": "Door forced open"},
    "event.door.held_open": {"da": "Døren stod åben for længe", "en": "Door left open too long"},
    "event.door.mode": {"da": "Dørens tilstand ændret", "en": "Door mode changed"},
    "event.checkin": {"da": "Tjekket ind", "en": "Checked in"},
    "event.booking.no_show": {"da": "Ingen mødte op til bookingen", "en": "No-show for a booking"},
    "event.booking.usage": {"da": "Brug af booking", "en": "Booking usage"},
    "event.sync.applied": {"da": "Bookinger opdateret", "en": "Bookings updated"},
    "event.sync.rejected": {"da": "Nye bookinger afvist", "en": "New bookings refused"},
    "event.command.result": {"da": "Svar på kommando", "en": "Command result"},
    "event.clock.untrusted": {"da": "Uret går muligvis forkert", "en": "The clock may be wrong"},
    "event.clock.trusted": {"da": "Uret går rigtigt igen", "en": "The clock is right again"},
    "event.reader.fault": {"da": "Kortlæser ude af drift", "en": "Card reader out of order"},
    "event.storage.fault": {"da": "Dørstyringen kan ikke gemme", "en": "The door controller cannot save"},
    "event.agent.started": {"da": "Dørstyringen er startet", "en": "Door controller started"},
    # locks
    "lock.unlocked": {"da": "låst op", "en": "unlocked"},
    "lock.locked": {"da": "låst", "en": "locked"},
    # roles
    "role.member": {"da": "medlem", "en": "member"},
    "role.leader": {"da": "leder", "en": "leader"},
    "role.caretaker": {"da": "pedel", "en": "caretaker"},
    # the kiosk display (keys starting "kiosk." are sent to the page)
    "kiosk.today": {"da": "I dag", "en": "Today"},
    "kiosk.tomorrow": {"da": "I morgen", "en": "Tomorrow"},
    "kiosk.now": {"da": "Nu", "en": "Now"},
    "kiosk.next": {"da": "Næste", "en": "Next"},
    "kiosk.more": {"da": "+{n} mere i dag", "en": "+{n} more today"},
    "kiosk.more_rooms": {"da": "+{n} lokaler mere", "en": "+{n} more rooms"},
    "kiosk.nothing_today": {"da": "Ingen bookinger i dag", "en": "No bookings today"},
    "kiosk.checked_in": {"da": "Tjekket ind", "en": "Checked in"},
    "kiosk.no_show": {"da": "Ikke mødt op", "en": "No-show"},
    "kiosk.pending": {"da": "Ikke godkendt endnu", "en": "Not approved yet"},
    "kiosk.closed": {"da": "Lukket", "en": "Closed"},
    "kiosk.doors": {"da": "Døre", "en": "Doors"},
    "kiosk.door.locked": {"da": "Låst", "en": "Locked"},
    "kiosk.door.unlocked": {"da": "Ulåst", "en": "Unlocked"},
    "kiosk.door.open": {"da": "Står åben", "en": "Open"},
    "kiosk.door.unknown": {"da": "Ukendt", "en": "Unknown"},
    "kiosk.mode.lockdown": {"da": "NEDLUKNING", "en": "LOCKDOWN"},
    "kiosk.mode.hold_open": {"da": "holdes åben", "en": "held open"},
    "kiosk.mode.unlocked": {"da": "ulåst under booking", "en": "unlocked for a booking"},
    "kiosk.mode.fire": {"da": "BRANDALARM", "en": "FIRE ALARM"},
    "kiosk.online": {"da": "Forbundet", "en": "Online"},
    "kiosk.offline": {
        "da": "Dørstyringen svarer ikke. Dørene virker måske stadig. Kontakt pedellen.",
        "en": "The door controller is not answering. The doors may still work. Call the caretaker.",
    },
    "kiosk.stale": {
        "da": "Bookingerne er ikke blevet opdateret i over et døgn (sidst {when}). Nye bookinger kan mangle.",
        "en": "The bookings have not been updated for over a day (last {when}). New bookings may be missing.",
    },
    "kiosk.reader_fault": {
        "da": "Kortlæser ude af drift: {where}. Tjek kablet, eller kontakt kommunens driftskontor.",
        "en": "Card reader out of order: {where}. Check its cable, or contact the municipality's facility office.",
    },
    "kiosk.storage_fault": {
        "da": "Dørstyringen kan ikke gemme{since}. Dørene virker, men hændelser venter på at blive gemt. "
        "Kontakt kommunens driftskontor.",
        "en": "The door controller cannot save{since}. The doors work, but events are waiting to be saved. "
        "Contact the municipality's facility office.",
    },
    "kiosk.since": {"da": " (siden kl. {time})", "en": " (since {time})"},
    "kiosk.cards_unknown": {
        "da": "Kort og PIN-koder virker ikke, før bookingerne er hentet igen. Kontakt kommunens driftskontor.",
        "en": "Cards and PINs do not work until the bookings are fetched again. Contact the municipality's facility office.",
    },
    "kiosk.checkin_reader": {"da": "læseren ved skærmen", "en": "the reader by this screen"},
    "kiosk.no_schedule": {"da": "Der er endnu ikke modtaget nogen bookinger.", "en": "No bookings received yet."},
    "kiosk.unknown_time": {"da": "aldrig", "en": "never"},
    # answers at the kiosk reader
    "checkin.checked_in": {
        "da": "Velkommen, {association}! I er tjekket ind: {title}, {room}",
        "en": "Welcome, {association}! You are checked in: {title}, {room}",
    },
    "checkin.already": {"da": "I er allerede tjekket ind: {title}, {room}", "en": "You are already checked in: {title}, {room}"},
    "checkin.later": {
        "da": "{association}: jeres booking begynder kl. {time} ({room})",
        "en": "{association}: your booking starts at {time} ({room})",
    },
    "checkin.ended": {"da": "{association}: jeres booking i dag er slut", "en": "{association}: your booking today has ended"},
    "checkin.no_booking_today": {
        "da": "{association}: I har ingen booking i dag",
        "en": "{association}: you have no booking today",
    },
    "checkin.unknown_card": {"da": "Ukendt kort", "en": "Unknown card"},
    "checkin.wrong_pin": {"da": "Forkert PIN-kode", "en": "Wrong PIN"},
    "checkin.expired": {"da": "Kortet gælder ikke nu", "en": "The card is not valid now"},
    "checkin.caretaker": {"da": "Hej pedel", "en": "Hello caretaker"},
    "checkin.rate_limited": {
        "da": "For mange forsøg. Vent lidt, og prøv igen",
        "en": "Too many tries. Wait a while and try again",
    },
    "checkin.enrol_open": {
        "da": "Hej pedel. Nyt kort: hold det op til læseren inden for et minut, så vises kortnummeret her.",
        "en": "Hello caretaker. New card: hold it to the reader within a minute to see its number here.",
    },
    "checkin.clock_untrusted": {
        "da": "Uret går muligvis forkert. Prøv igen senere",
        "en": "The clock may be wrong. Try again later",
    },
    "checkin.enrol": {
        "da": "Kortnummer til bookingsystemet: {card}   (i omvendt rækkefølge: {reversed})",
        "en": "Card number for the booking system: {card}   (reversed byte order: {reversed})",
    },
    # the demo prompt
    "demo.title": {"da": "Haldor demo: simuleret dørstyring", "en": "Haldor demo: simulated door control"},
    "demo.help": {
        "da": "Skriv et kort eller en PIN-kode, evt. med dør foran ('gym-a 4821', 'main 2468') eller 'kiosk' for check-in. 'q' afslutter.",
        "en": "Type a card or a PIN, optionally with a door first ('gym-a 4821', 'main 2468') or 'kiosk' to check in. 'q' quits.",
    },
    "demo.cards": {"da": "Prøv disse kort og koder", "en": "Try these cards and codes"},
    "demo.doors": {"da": "Døre", "en": "Doors"},
    "demo.osdp": {
        "da": "Gymnastiksal A har en OSDP-læser med krypteret forbindelse (Secure Channel)",
        "en": "Gymnastiksal A has an OSDP reader with an encrypted link (Secure Channel)",
    },
    "demo.bad_input": {"da": "Hverken kort eller PIN-kode", "en": "Neither a card nor a PIN"},
    "demo.no_answer": {"da": "Intet svar fra agenten", "en": "No answer from the agent"},
    "demo.unknown_door": {"da": "Ukendt dør", "en": "Unknown door"},
    "demo.screen": {"da": "Skærmen ved indgangen (åbn i en browser)", "en": "The screen by the entrance (open it in a browser)"},
    "demo.bye": {"da": "Demo slut; alle låse i sikker tilstand", "en": "Demo over; every lock in its safe state"},
    "demo.booking_pin": {"da": "bookingens PIN-kode", "en": "the booking's PIN"},
    "demo.unknown": {
        "da": "et kort systemet ikke kender (ved kiosken: pedelkortet først, så vises nummeret)",
        "en": "a card the system does not know (at the kiosk: the caretaker's card first shows its number)",
    },
    # the fleet's page (haldor fleet): the municipality's view of every site
    "fleet.title": {"da": "Haldor: faciliteter", "en": "Haldor: facilities"},
    "fleet.site.one": {"da": "sted", "en": "site"},
    "fleet.site.many": {"da": "steder", "en": "sites"},
    "fleet.offline_count": {"da": "offline", "en": "offline"},
    "fleet.switch": {"da": "English", "en": "Dansk"},
    "fleet.live": {"da": "Opdateres af sig selv", "en": "Updates by itself"},
    "fleet.updated": {"da": "Opdateret", "en": "Updated"},
    "fleet.local_times": {
        "da": "Tider er stedets lokale tid.",
        "en": "Times are each site's local time.",
    },
    "fleet.filter": {"da": "Vis", "en": "Show"},
    "fleet.from": {"da": "Fra dato", "en": "From date"},
    "fleet.to": {"da": "Til dato", "en": "To date"},
    "fleet.all_sites": {"da": "Alle steder", "en": "All sites"},
    "fleet.bad_date": {"da": "Ukendt dato (skriv DD-MM-ÅÅÅÅ, fx 06-12-2026)", "en": "Unknown date (write YYYY-MM-DD)"},
    "fleet.sites": {"da": "Steder", "en": "Sites"},
    "fleet.site": {"da": "Sted", "en": "Site"},
    "fleet.status": {"da": "Status", "en": "Status"},
    "fleet.since": {"da": "Siden", "en": "Since"},
    "fleet.schedule": {"da": "Bookinger (version, alder)", "en": "Bookings (version, age)"},
    "fleet.hours_old": {"da": "t gammel", "en": "h old"},
    "fleet.outbox": {"da": "Ikke afsendt", "en": "Not yet sent"},
    "fleet.blind": {
        "da": "Ingen forbindelse til brokeren siden {since}: stederne vises, som de var da",
        "en": "No connection to the broker since {since}: the sites are shown as they were then",
    },
    "fleet.unknown": {"da": "Ukendt", "en": "Unknown"},
    "fleet.events_missing": {"da": "{n} hændelser mangler (hentes igen)", "en": "{n} events missing (asked for again)"},
    "fleet.events_lost": {"da": "{n} hændelser tabt for altid", "en": "{n} events lost for good"},
    "fleet.mode": {"da": "Tilstand", "en": "Mode"},
    "fleet.readers": {"da": "Kortlæsere", "en": "Card readers"},
    "fleet.online": {"da": "online", "en": "online"},
    "fleet.offline": {"da": "offline", "en": "offline"},
    "fleet.silent": {"da": "svarer ikke", "en": "not answering"},
    "fleet.ok": {"da": "i orden", "en": "ok"},
    "fleet.mode.normal": {"da": "normal", "en": "normal"},
    "fleet.mode.lockdown": {"da": "nedlukning", "en": "lockdown"},
    "fleet.alarms": {"da": "Alarmer", "en": "Alarms"},
    "fleet.no_alarms": {"da": "Ingen alarmer i perioden.", "en": "No alarms in the period."},
    "fleet.time": {"da": "Tid", "en": "Time"},
    "fleet.event": {"da": "Hændelse", "en": "Event"},
    "fleet.door": {"da": "Dør", "en": "Door"},
    "fleet.reader": {"da": "Læser", "en": "Reader"},
    "fleet.reason": {"da": "Årsag", "en": "Reason"},
    "fleet.usage": {"da": "Brug pr. uge", "en": "Use per week"},
    "fleet.no_usage": {"da": "Ingen bookinger i perioden.", "en": "No bookings in the period."},
    "fleet.week": {"da": "Uge", "en": "Week"},
    "fleet.room": {"da": "Lokale", "en": "Room"},
    "fleet.association": {"da": "Forening", "en": "Association"},
    "fleet.bookings": {"da": "Bookinger", "en": "Bookings"},
    "fleet.booked_h": {"da": "Booket (timer)", "en": "Booked (hours)"},
    "fleet.used_h": {"da": "Brugt (timer)", "en": "Used (hours)"},
    "fleet.used_pct": {"da": "Brugt", "en": "Used"},
    "fleet.no_shows": {"da": "Udeblevet", "en": "No-shows"},
    "fleet.closed": {"da": "Lukket", "en": "Closed"},
    "fleet.closed_help": {
        "da": "Lokalet var lukket hele tiden: tæller ikke mod foreningen",
        "en": "The room was closed throughout: not held against the association",
    },
    "fleet.unobserved": {"da": "Ikke set", "en": "Not seen"},
    "fleet.unobserved_help": {
        "da": "Dørstyringen var slukket en del af tiden: tæller ikke som ubrugt",
        "en": "The door controller was off part of the time: not counted as unused",
    },
    "fleet.booked": {"da": "booket", "en": "booked"},
    "fleet.used": {"da": "brugt", "en": "used"},
    "fleet.chart": {"da": "Bookede og brugte timer pr. uge", "en": "Booked and used hours per week"},
    "fleet.season": {"da": "Sæsonen pr. forening", "en": "The season per association"},
    "fleet.season_col": {"da": "Sæson", "en": "Season"},
    "fleet.site_count": {"da": "Steder", "en": "Sites"},
    "fleet.more_rows": {
        "da": "Viser de første {shown} rækker; hent regnearket for dem alle.",
        "en": "Showing the first {shown} rows; download the spreadsheet for all of them.",
    },
    "fleet.download": {"da": "Hent som regneark", "en": "Download as spreadsheet"},
    "fleet.access": {"da": "Adgangslog", "en": "Access log"},
    "fleet.access_for": {"da": "Adgangslog for", "en": "Access log for"},
    "fleet.access_help": {
        "da": "Kort og koder vises kun med id; hvem der har dem, står i bookingsystemet.",
        "en": "Cards and codes are shown by id only; who holds them is in the booking system.",
    },
    "fleet.all_doors": {"da": "Alle døre", "en": "All doors"},
    "fleet.credential": {"da": "Kort/kode (id)", "en": "Card/code (id)"},
    "fleet.booking": {"da": "Booking (id)", "en": "Booking (id)"},
    "fleet.no_access": {"da": "Ingen adgang i perioden.", "en": "No access in the period."},
    "fleet.back": {"da": "Tilbage til oversigten", "en": "Back to the overview"},
    "fleet.unknown_site": {"da": "Ukendt sted", "en": "Unknown site"},
    "fleet.unknown_door": {"da": "Ukendt dør; viser alle døre", "en": "Unknown door; showing every door"},
    "fleet.unknown_filter_site": {"da": "Ukendt sted; viser alle steder", "en": "Unknown site; showing every site"},
    # alerts from the fleet (webhook and e-mail texts)
    "alert.door.forced": {"da": "døren blev åbnet uden tilladelse", "en": "the door was forced open"},
    "alert.door.held_open": {"da": "døren har stået åben for længe", "en": "the door has been open too long"},
    "alert.reader.fault": {"da": "kortlæseren virker ikke ({detail})", "en": "the card reader is out of order ({detail})"},
    "alert.storage.fault": {"da": "dørstyringen kan ikke gemme ({detail})", "en": "the door controller cannot save ({detail})"},
    "alert.access.guessing.wrong_pin": {
        "da": "nogen prøver mange forkerte PIN-koder; tastaturet er spærret en tid",
        "en": "someone is trying many wrong PINs; the keypad is locked for a while",
    },
    "alert.access.guessing.unknown_card": {
        "da": "nogen prøver mange ukendte kort; læseren afviser kort en tid",
        "en": "someone is trying many unknown cards; the reader refuses cards for a while",
    },
    "alert.broker": {
        "da": "fleet-tjenesten har mistet forbindelsen til brokeren; dørstyringernes tilstand er ukendt",
        "en": "the fleet service has lost the broker; the door controllers' states are unknown",
    },
    "alert.sync.rejected": {
        "da": "dørstyringen afviste de nye bookinger ({detail})",
        "en": "the door controller refused the new bookings ({detail})",
    },
    "alert.command.failed": {
        "da": "dørstyringen afviste en kommando ({detail})",
        "en": "the door controller refused a command ({detail})",
    },
    "alert.offline": {"da": "dørstyringen svarer ikke", "en": "the door controller does not answer"},
    "alert.outbox.backlog": {"da": "{detail} hændelser venter på at blive sendt", "en": "{detail} events are waiting to be sent"},
    "alert.open": {"da": "ALARM", "en": "ALARM"},
    "alert.resolved": {"da": "Løst", "en": "Resolved"},
    "alert.since": {"da": "Siden", "en": "Since"},
    "fleet.incidents": {"da": "Åbne alarmer", "en": "Open alarms"},
    "fleet.no_incidents": {"da": "Ingen åbne alarmer.", "en": "No open alarms."},
    "fleet.undelivered": {
        "da": "{n} alarmbeskeder er ikke nået frem endnu (sidste fejl: {error}); de sendes igen.",
        "en": "{n} alert messages have not arrived yet (last error: {error}); they are sent again.",
    },
    "fleet.undelivered_one": {
        "da": "1 alarmbesked er ikke nået frem endnu (sidste fejl: {error}); den sendes igen.",
        "en": "1 alert message has not arrived yet (last error: {error}); it is sent again.",
    },
    "fleet.login": {"da": "Log ind", "en": "Log in"},
    "fleet.login_title": {"da": "Haldor: log ind", "en": "Haldor: log in"},
    "fleet.user_name": {"da": "Brugernavn", "en": "User name"},
    "fleet.password": {"da": "Adgangskode", "en": "Password"},
    "fleet.login_failed": {
        "da": "Forkert brugernavn eller adgangskode. Efter 5 forkerte forsøg er brugeren låst i 15 minutter.",
        "en": "Wrong user name or password. After 5 wrong tries the user is locked for 15 minutes.",
    },
    "fleet.logged_in": {"da": "Logget ind som", "en": "Logged in as"},
    "fleet.logout": {"da": "Log ud", "en": "Log out"},
    "fleet.role.viewer": {"da": "læser", "en": "viewer"},
    "fleet.role.operator": {"da": "operatør", "en": "operator"},
    "fleet.actions": {"da": "Handlinger", "en": "Actions"},
    "fleet.actions_help": {
        "da": "Sendes underskrevet til dørstyringen; svaret vises herunder, når det kommer.",
        "en": "Sent signed to the door controller; the answer shows below when it comes.",
    },
    "fleet.minutes": {"da": "Lås op i (minutter)", "en": "Unlock for (minutes)"},
    "fleet.why": {"da": "Hvorfor (fx sagsnummer)", "en": "Why (e.g. ticket number)"},
    "fleet.action.unlock": {"da": "Lås op", "en": "Unlock"},
    "fleet.action.hold_open": {"da": "Hold åben", "en": "Hold open"},
    "fleet.action.release": {"da": "Lås igen", "en": "Lock again"},
    "fleet.action.lockdown": {"da": "Nedluk hele stedet", "en": "Lock down the site"},
    "fleet.action.lift_lockdown": {"da": "Ophæv nedlukning", "en": "Lift the lockdown"},
    "fleet.action.resync": {"da": "Hent bookinger igen", "en": "Fetch bookings again"},
    "fleet.action.login": {"da": "Logget ind", "en": "Logged in"},
    "fleet.action.logout": {"da": "Logget ud", "en": "Logged out"},
    "fleet.audit": {"da": "Revisionslog", "en": "Audit log"},
    "fleet.audit_help": {
        "da": "Hvem gjorde hvad og hvornår, og hvad dørstyringen svarede. Kan ikke ændres.",
        "en": "Who did what and when, and what the door controller answered. Cannot be changed.",
    },
    "fleet.no_audit": {"da": "Ingen handlinger i perioden.", "en": "No actions in the period."},
    "fleet.who": {"da": "Hvem", "en": "Who"},
    "fleet.what": {"da": "Hvad", "en": "What"},
    "fleet.result": {"da": "Svar", "en": "Answer"},
    "fleet.result.ok": {"da": "udført", "en": "done"},
    "fleet.result.refused": {"da": "afvist", "en": "refused"},
    "fleet.result.waiting": {"da": "venter på svar", "en": "waiting for an answer"},
    "fleet.result.none": {
        "da": "intet svar: dørstyringen var måske offline",
        "en": "no answer: the door controller may have been offline",
    },
    "fleet.no_command_key": {
        "da": "Handlinger kræver fleetens kommandonøgle (--command-key).",
        "en": "Actions need the fleet's command key (--command-key).",
    },
    "fleet.viewer_refused": {
        "da": "Kun operatører kan udføre handlinger; du kan læse.",
        "en": "Only operators act; you can read.",
    },
    "fleet.bad_minutes": {
        "da": "Skriv et helt antal minutter fra 1 til 1440.",
        "en": "Write a whole number of minutes from 1 to 1440.",
    },
    "fleet.unknown_target": {"da": "Ukendt sted eller dør.", "en": "Unknown site or door."},
    "fleet.action.refused": {"da": "Afvist af fleeten", "en": "Refused by the fleet"},
    "fleet.action.login_refused": {"da": "Forkert adgangskode", "en": "Wrong password"},
    "fleet.action.locked": {"da": "Låst efter 5 forkerte forsøg", "en": "Locked after 5 wrong tries"},
    "fleet.action.not_sent": {"da": "Ikke sendt", "en": "Not sent"},
    "fleet.confirm_lockdown": {
        "da": "Nedlukning låser alle døre; kun pedellen kommer ind. Fortsæt?",
        "en": "A lockdown locks every door; only the caretaker gets in. Go on?",
    },
    "fleet.hold_open_help": {
        "da": "Hold åben gælder, til nogen trykker Lås igen.",
        "en": "Hold open lasts until someone presses Lock again.",
    },
}

TEXTS.update(DASHBOARD_TEXTS)
TEXTS.update(ENROL_TEXTS)
TEXTS.update(RELEASE_TEXTS)


def t(key: str, language: str = "da") -> str:
    """The text for ``key`` in ``language``, falling back to Danish."""
    entry = TEXTS[key]
    return entry.get(language) or entry["da"]


def both(key: str) -> str:
    """Danish first, English after: for places with no language setting (the demo prompt)."""
    return f"{t(key, 'da')} / {t(key, 'en')}"


def reason(code: str, language: str = "da") -> str:
    return t(f"reason.{code}", language)


def event(kind: str, language: str = "da") -> str:
    """An event type (PROTOCOL 5) in words."""
    return t(f"event.{kind}", language)


def kiosk_labels(language: str) -> dict[str, str]:
    """The page's own words, in one language."""
    return {key.removeprefix("kiosk."): t(key, language) for key in TEXTS if key.startswith("kiosk.")}
