"""Haldor: door access for municipal facilities booked by associations."""

__version__ = "0.1.0"
