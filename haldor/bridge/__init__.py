"""The municipality's side: `haldor bridge` turns the booking system's calendar feeds and
spreadsheets into signed schedules for every site (PROTOCOL 2-3). Runs beside the
broker, never on a box; the agent imports none of it."""
