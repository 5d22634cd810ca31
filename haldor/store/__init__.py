"""The local SQLite store (see :mod:`.database`)."""

from .database import DB_NAME, Store
from .schedule_tables import ApplyResult, GapError
from .secret import SECRET_NAME, fingerprint

__all__ = ["DB_NAME", "SECRET_NAME", "ApplyResult", "GapError", "Store", "fingerprint"]
