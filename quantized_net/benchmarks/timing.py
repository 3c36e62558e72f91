"""Times inference engines one after another in one process, each in a
steady state, as when it runs alone (for ``bench_packed.py``)."""
import statistics
import time

#: Seconds of rest before each engine: BLAS's and OpenMP's idle threads
#: spin for up to about 0.1 s after a call.
SETTLE_SECONDS = 0.25
#: Seconds of untimed calls before each engine is timed, at least: after
#: the rest, a fast engine's first milliseconds ran about 15% slow (the
#: weights out of cache, the cores not back at speed).
WARM_SECONDS = 0.05


def time_engines(engines, pixels, rounds, calls, synchronize):
    """Median seconds of ``classify(pixels)`` for each ``(name, classify)``:
    ``rounds`` rounds of ``calls`` timed calls each, after untimed ones for
    at least :data:`WARM_SECONDS`."""
    samples = {name: [] for name, _ in engines}
    for _ in range(rounds):
        for name, classify in engines:
            time.sleep(SETTLE_SECONDS)
            warm_until = time.perf_counter() + WARM_SECONDS
            classify(pixels)
            while time.perf_counter() < warm_until:
                classify(pixels)
            for _ in range(calls):
                synchronize()
                start = time.perf_counter()
                classify(pixels)
                synchronize()
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values)
            for name, values in samples.items()}
