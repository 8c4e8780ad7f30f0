"""A small timing core: interleaved rounds, medians, ratios measured in the same run.

On a shared, noisy machine a single absolute time means little. ``compare`` runs every contender in
turn (A B C A B C ...) so that a slow spell hits all of them alike, and reports medians:

    result = compare({"kernel": lambda: k(x), "numpy": lambda: r(x)}, baseline="kernel")
    result.medians["numpy"]   # seconds per call
    result.ratios["numpy"]    # numpy / kernel, the median of the per-round ratios

No pytest or other dependency; used by ``python -m fastopt``.
"""
import gc
import statistics
import time
from dataclasses import dataclass


@dataclass
class Result:
    """Per-contender timings of one ``compare`` run (all times in seconds per call)."""

    times: dict    # name -> list of per-call times, one per round
    calls: dict    # name -> calls per round
    baseline: str

    @property
    def medians(self):
        return {name: statistics.median(values) for name, values in self.times.items()}

    @property
    def ratios(self):
        """Each contender's time divided by the baseline's, as the median of the per-round ratios."""
        return {name: self.ratio(name, self.baseline) for name in self.times}

    def ratio(self, a, b):
        """time(a) / time(b): the median over rounds of the ratio measured within each round."""
        return statistics.median(ta / tb for ta, tb in zip(self.times[a], self.times[b]))


def calls_per_round(func, target):
    """How many calls of ``func`` take about ``target`` seconds (at least 1). Doubles as a warm-up."""
    calls = 1
    while True:
        start = time.perf_counter()
        for _ in range(calls):
            func()
        elapsed = time.perf_counter() - start
        if elapsed >= target / 2:
            return max(1, round(calls * target / elapsed))
        calls *= 2


def compare(contenders, baseline=None, rounds=15, target=0.003, warmup=0.01):
    """Time zero-argument callables interleaved in ``rounds`` rounds; return a :class:`Result`.

    ``contenders`` maps names to callables; ``baseline`` names the one ratios are relative to (the
    first by default). Each contender first runs for about ``warmup`` seconds, then gets as many
    calls per round as take about ``target`` seconds. Use an odd ``rounds`` so medians are real
    measurements. The garbage collector is off while timing, as in ``timeit``.
    """
    if not contenders:
        raise ValueError("compare() needs at least one contender")
    baseline = next(iter(contenders)) if baseline is None else baseline
    if baseline not in contenders:
        raise ValueError(f"baseline {baseline!r} is not one of the contenders {list(contenders)}")
    for func in contenders.values():
        calls_per_round(func, warmup)
    calls = {name: calls_per_round(func, target) for name, func in contenders.items()}
    times = {name: [] for name in contenders}
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        for _ in range(rounds):
            for name, func in contenders.items():
                n = calls[name]
                start = time.perf_counter()
                for _ in range(n):
                    func()
                times[name].append((time.perf_counter() - start) / n)
    finally:
        if gc_was_enabled:
            gc.enable()
    return Result(times=times, calls=calls, baseline=baseline)
