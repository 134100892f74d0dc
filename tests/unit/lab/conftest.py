"""Fixtures shared by the lab's tests: the one in-process Lab (its EBS behaviour patches moto once per process, so
every test module that needs a whole lab uses this one), a client of it freshly reset, and host models without a lab."""

import pytest

from lab.control import Lab, LabClient
from lab.dataplane import BlockStore
from lab.windows import WindowsServer
from lab.windows.testing import sample_instance


@pytest.fixture(scope="session", name="lab")
def lab_fixture():
    lab = Lab().start()
    try:
        yield lab
    finally:
        lab.stop()


@pytest.fixture(name="client")
def client_fixture(lab):
    """The lab through its control API, freshly reset; the SQL application is stopped afterwards."""
    client = LabClient(lab.state())
    client.reset()
    yield client
    client.stop_application("win-sql-01")


@pytest.fixture(name="host_model")
def host_model_fixture():
    """``host_model(name="win-sql-01", **sample_instance options)``: a seeded host model of its own BlockStore; every
    thread the test's models start (tasks, the application) is stopped afterwards."""
    made = []

    def make(name="win-sql-01", **options):
        model = WindowsServer(sample_instance(name, **options), BlockStore()).seed()
        made.append(model)
        return model

    yield make
    for model in made:
        model.shutdown()
