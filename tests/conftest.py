import compileall
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from haldor.access.model import Policy
from haldor.store import Store

from .broker import Broker
from .helpers import SITE


def pytest_sessionstart(session):
    """The tests start hundreds of Python children that import haldor (``haldor run``, the
    CLI, schedule and bridge workers). Where PYTHONDONTWRITEBYTECODE is set none of them
    keeps its bytecode, and each compiled the package anew (0.15 s or more a start):
    compiled once here, they read it (a module changed since is compiled as ever)."""
    import haldor

    compileall.compile_dir(Path(haldor.__file__).parent, quiet=1)


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "data", SITE, "Europe/Copenhagen", Policy())
    yield s
    s.close()


@pytest.fixture
def broker(tmp_path):
    """A real Mosquitto on a free loopback port."""
    b = Broker(tmp_path / "broker").start()
    yield b
    b.stop()


@pytest.fixture
def signing_key():
    """The booking system's Ed25519 key."""
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="session")
def postgres():
    """A real PostgreSQL server for the session; each test asks it for a fresh database."""
    from .postgres import Postgres

    server = Postgres().start()
    yield server
    server.stop()


@pytest.fixture
def dynsec_broker(tmp_path):
    """A real Mosquitto with the dynamic security plugin and an admin login (enrolment)."""
    from .broker import DynsecBroker

    b = DynsecBroker(tmp_path / "broker").start()
    yield b
    b.stop()
