"""Fixtures shared by the lab's tests: the one in-process Lab (its EBS behaviour patches moto once per process, so
every test module that needs a whole lab uses this one)."""

import pytest

from lab.control import Lab


@pytest.fixture(scope="session", name="lab")
def lab_fixture():
    lab = Lab().start()
    try:
        yield lab
    finally:
        lab.stop()
