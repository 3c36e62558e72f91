"""The one way the benchmarks time code: side by side in one process, each
in a steady state, the median of many calls.

Every benchmark compares things run in the same process (the packed
engine against BLAS, a quantized training step against a float one, an
all-reduce against a memory copy), so that they see the same machine; a
ratio between them is the result, not an absolute time.
"""
import statistics
import time


def median_seconds(runners, rounds, calls=1, warmup=0, settle=0.0,
                   warm_seconds=0.0, synchronize=None):
    """Median seconds of one call of each runner.

    In order: ``warmup`` untimed rounds of every runner (compilation,
    first allocations); then ``rounds`` rounds, in each of which every
    runner in turn rests ``settle`` seconds (other runners' idle BLAS and
    OpenMP threads spin for a while after their last call),
    makes untimed calls for at least ``warm_seconds`` (its data back in
    cache, the cores back at speed after the rest) and then ``calls``
    timed calls. Interleaving the runners round by round lets each see the
    same machine state.

    Args:
        runners (list): ``(name, call)`` pairs; ``call()`` is timed.
        rounds (int): Timed rounds, at least 1.
        calls (int): Timed calls per runner and round, at least 1.
        warmup (int): Untimed rounds before them.
        settle (float): Seconds of rest before each runner's calls.
        warm_seconds (float): Seconds of untimed calls, at least one call
            where positive, before the timed ones.
        synchronize (callable): Called before a call is timed and before
            the clock is read after it: waits for a GPU's queued work, or
            for the other MPI processes.

    Returns:
        dict: ``name -> median seconds of one call``.
    """
    synchronize = synchronize or (lambda: None)
    for _ in range(warmup):
        for _, call in runners:
            call()
    samples = {name: [] for name, _ in runners}
    for _ in range(rounds):
        for name, call in runners:
            if settle:
                time.sleep(settle)
            if warm_seconds > 0:
                warm_until = time.perf_counter() + warm_seconds
                call()
                while time.perf_counter() < warm_until:
                    call()
            for _ in range(calls):
                synchronize()
                start = time.perf_counter()
                call()
                synchronize()
                samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values)
            for name, values in samples.items()}
