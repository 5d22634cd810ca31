"""Hardware behind small interfaces. Drivers know cards, pins and ports, never bookings."""
