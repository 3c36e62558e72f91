"""A fake clock for the benchmarks' timing."""
import pytest

from quantized_net.benchmarks import timing


class FakeClock(object):
    """``time`` for the timing module: a clock that moves only when told,
    by a sleep or by :meth:`advance`."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now

    def sleep(self, seconds):
        self.advance(seconds)

    def advance(self, seconds):
        self.now += seconds


@pytest.fixture
def fake_clock(monkeypatch):
    """The clock that :func:`timing.median_seconds` reads, for this test."""
    clock = FakeClock()
    monkeypatch.setattr(timing, 'time', clock)
    return clock
