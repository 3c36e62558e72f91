"""benchmarks/timing.py: the order of warm-up rounds, rests, untimed and
timed calls, and the medians, on a fake clock."""
import pytest

from quantized_net.benchmarks import timing


class FakeClock(object):
    """``time`` for the timing module: a clock that moves only when it
    sleeps or a runner runs, and a log of both."""

    def __init__(self):
        self.now, self.log = 0.0, []

    def perf_counter(self):
        return self.now

    def sleep(self, seconds):
        self.log.append(('pause', seconds))
        self.now += seconds

    def runner(self, name, *seconds):
        """A call that takes each of ``seconds`` in turn, then the last."""
        durations = list(seconds)

        def call():
            self.log.append((name, self.now))
            self.now += durations.pop(0) if len(durations) > 1 \
                else durations[0]
        return call


def names(clock):
    return [entry[0] for entry in clock.log]


def test_runners_are_timed_after_a_pause_and_a_warm_up(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing, 'time', clock)
    medians = timing.median_seconds(
        [('a', clock.runner('a', 0.02)), ('b', clock.runner('b', 0.5))],
        rounds=2, calls=3, settle=0.25, warm_seconds=0.05)
    # a: a pause, untimed calls until 0.05 s have passed (3 of 0.02 s),
    # then 3 timed ones; b: one untimed call already passes 0.05 s.
    assert names(clock) == (['pause'] + ['a'] * 6 + ['pause'] +
                            ['b'] * 4) * 2
    assert all(seconds == 0.25 for name, seconds in clock.log
               if name == 'pause')
    assert medians == {'a': pytest.approx(0.02), 'b': pytest.approx(0.5)}


def test_warm_up_rounds_are_not_timed(monkeypatch):
    # The first call of each (compilation) is slow; a warm-up round takes
    # it, the rounds after are interleaved a call each.
    clock = FakeClock()
    monkeypatch.setattr(timing, 'time', clock)
    medians = timing.median_seconds(
        [('a', clock.runner('a', 9.0, 0.1)), ('b', clock.runner('b', 7.0,
                                                                0.3))],
        rounds=3, warmup=1)
    assert names(clock) == ['a', 'b'] * 4
    assert medians == {'a': pytest.approx(0.1), 'b': pytest.approx(0.3)}


def test_the_median_ignores_an_outlier(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing, 'time', clock)
    medians = timing.median_seconds(
        [('a', clock.runner('a', 0.1, 0.1, 5.0, 0.1, 0.1))], rounds=5)
    assert medians == {'a': pytest.approx(0.1)}


def test_each_timed_call_is_between_synchronizations(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing, 'time', clock)
    timing.median_seconds([('a', clock.runner('a', 0.1))], rounds=1,
                          calls=2, synchronize=lambda: clock.log.append(
                              ('sync', clock.now)))
    assert names(clock) == ['sync', 'a', 'sync'] * 2


def test_round_seconds_keeps_each_call_of_each_round(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(timing, 'time', clock)
    samples = timing.round_seconds(
        [('a', clock.runner('a', 0.5, 0.25, 0.125, 1.0))], rounds=2,
        calls=2)
    assert samples == {'a': [[0.5, 0.25], [0.125, 1.0]]}


def test_a_ratio_spread_is_the_median_and_quartiles_of_each_rounds():
    # Each round's median call, over the other runner's of that round.
    a = [[2.0, 2.0, 9.0], [3.0], [4.0], [10.0], [6.0]]
    b = [[1.0], [1.0], [1.0], [2.0], [1.0]]
    assert timing.ratio_spread(a, b) == (4.0, 3.0, 5.0)
    assert timing.ratio_spread([[3.0]], [[2.0]]) == (1.5, 1.5, 1.5)
