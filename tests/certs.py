"""A test CA with a server certificate for 127.0.0.1 and localhost and a client
certificate for valby-skole: made by `haldor ca`'s own code, so every TLS test runs on
what a municipality makes."""

from __future__ import annotations

from pathlib import Path

from haldor.integrator import ca


def make_pki(directory: Path, ca_name: str = "Haldor test CA") -> dict[str, Path]:
    ca.init(directory, ca_name)
    server_key, server = ca.broker_cert(directory, "localhost", ["127.0.0.1"])
    client_key, client = ca.client_cert(directory, "valby-skole")
    assert client_key is not None
    return {
        "ca": directory / ca.CA_CERT,
        "server": server,
        "server_key": server_key,
        "client": client,
        "client_key": client_key,
    }
