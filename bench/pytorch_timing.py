"""Timing shared by the PyTorch sides of the CPU benchmarks (bench/pytorch_*.py)."""
import statistics
import time


def median_ms(fn, n):
    """Median milliseconds of fn over n runs after one warm-up run."""
    fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts)
