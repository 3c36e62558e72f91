"""engine_timing.py: the order of rests, untimed and timed calls, and the
medians, on a fake clock."""
import pytest

from quantized_net.benchmarks import timing as engine_timing


class FakeClock(object):
    """``time`` for engine_timing: a clock that moves only when it sleeps
    or an engine runs, and a log of both."""

    def __init__(self):
        self.now, self.log = 0.0, []

    def perf_counter(self):
        return self.now

    def sleep(self, seconds):
        self.log.append(('pause', seconds))
        self.now += seconds

    def engine(self, name, seconds):
        def classify(pixels):
            self.log.append((name, self.now))
            self.now += seconds
        return classify


def test_engines_are_timed_after_a_pause_and_a_warm_up(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(engine_timing, 'time', clock)
    monkeypatch.setattr(engine_timing, 'SETTLE_SECONDS', 0.25)
    monkeypatch.setattr(engine_timing, 'WARM_SECONDS', 0.05)
    medians = engine_timing.time_engines(
        [('a', clock.engine('a', 0.02)), ('b', clock.engine('b', 0.5))],
        None, rounds=2, calls=3, synchronize=lambda: None)
    # a: a pause, untimed calls until 0.05 s have passed (3 of 0.02 s),
    # then 3 timed ones; b: one untimed call already passes 0.05 s.
    names = [entry[0] for entry in clock.log]
    assert names == (['pause'] + ['a'] * 6 + ['pause'] + ['b'] * 4) * 2
    assert all(seconds == 0.25 for name, seconds in clock.log
               if name == 'pause')
    assert medians == {'a': pytest.approx(0.02), 'b': pytest.approx(0.5)}
