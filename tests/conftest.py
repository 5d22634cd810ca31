import pytest

from haldor.access.model import Policy
from haldor.access.store import Store

from .helpers import SITE


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "data", SITE, "Europe/Copenhagen", Policy())
    yield s
    s.close()
