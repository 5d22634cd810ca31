"""One exception tree for the project; lower libraries' errors are translated at the edges."""

#: a command's exit status: a failure, and a bad configuration, document or command line
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2


class HaldorError(Exception):
    """Base of every error Haldor raises on purpose."""


class ConfigError(HaldorError):
    """The configuration file is unusable; the message names the file and key."""


class DocumentError(HaldorError):
    """A schedule, delta or command was rejected whole; the message says why."""


class SignatureError(DocumentError):
    """An envelope's signature is missing, unknown or does not verify."""


class StoreError(HaldorError):
    """The local database cannot be used."""


class DriverError(HaldorError):
    """A hardware driver failed (a port vanished, a pin is taken)."""
