"""The functional suite's fixtures, for the reliability suite too: real fake upstreams and
routers as processes on loopback."""

from tests.functional.conftest import fake_a, fake_b, fakes, start_router

__all__ = ["fake_a", "fake_b", "fakes", "start_router"]
