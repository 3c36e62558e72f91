"""The one way the benchmarks time code: side by side in one process, each
in a steady state, the median of many calls.

Every benchmark compares things run in the same process (the packed
engine against BLAS, a quantized training step against a float one, an
all-reduce against a memory copy), so that they see the same machine; a
ratio between them is the result, not an absolute time.
"""
import statistics
import time


def round_seconds(runners, rounds, calls=1, warmup=0, settle=0.0,
                  warm_seconds=0.0, synchronize=None):
    """Seconds of each timed call of each runner, round by round.

    In order: ``warmup`` untimed rounds of every runner (compilation,
    first allocations); then ``rounds`` rounds, in each of which every
    runner in turn rests ``settle`` seconds (other runners' idle BLAS and
    OpenMP threads spin for a while after their last call),
    makes untimed calls for at least ``warm_seconds`` (its data back in
    cache, the cores back at speed after the rest) and then ``calls``
    timed calls. Interleaving the runners round by round lets each see the
    same machine state, so that the ratio of two runners' times in one
    round compares them under the same conditions.

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
        dict: ``name -> [[seconds of each call] of each round]``.
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
            samples[name].append([])
            for _ in range(calls):
                synchronize()
                start = time.perf_counter()
                call()
                synchronize()
                samples[name][-1].append(time.perf_counter() - start)
    return samples


def median_seconds(runners, rounds, calls=1, **options):
    """Median seconds of one call of each runner over every timed call of
    :func:`round_seconds`, which takes the same arguments.

    Returns:
        dict: ``name -> median seconds of one call``.
    """
    return {name: statistics.median(s for calls in per_round for s in calls)
            for name, per_round in round_seconds(
                runners, rounds, calls, **options).items()}


def ratio_spread(numerators, denominators):
    """The ratio of two runners' times round by round (each round's
    median call), as ``(median, low quartile, high quartile)`` over the
    rounds: how far one run's ratio can be trusted, where the ratio of
    two medians taken apart would hide it.

    Args:
        numerators, denominators: Two runners' entries of
            :func:`round_seconds`.
    """
    ratios = [statistics.median(a) / statistics.median(b)
              for a, b in zip(numerators, denominators)]
    if len(ratios) == 1:
        return ratios[0], ratios[0], ratios[0]
    low, _, high = statistics.quantiles(ratios, n=4, method='inclusive')
    return statistics.median(ratios), low, high
