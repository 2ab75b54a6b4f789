"""Timing and model lookup shared by the PyTorch sides of the CPU benchmarks (bench/pytorch_*.py)."""
import importlib
import statistics
import time

# smp class name -> reference module in scripts/reference (on sys.path)
MODULES = {'PAN': 'pan_model', 'Unet': 'unet_model', 'FPN': 'fpn_model', 'PSPNet': 'pspnet_model',
           'DeepLabV3': 'deeplab_model', 'DeepLabV3Plus': 'deeplab_model'}


def reference_class(arch):
    """The reference implementation of smp class `arch`, or None when the references lack it."""
    try:
        return getattr(importlib.import_module(MODULES[arch]), arch)
    except (KeyError, ImportError, AttributeError):
        return None


def median_ms(fn, n, warm=1):
    """Median milliseconds of fn over n runs after `warm` warm-up runs."""
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts)
