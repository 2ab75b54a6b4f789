#!/usr/bin/python3
"""NumPy-written .npy fixtures for tests/engine/npy.test.ts.

Usage: /usr/bin/python3 scripts/reference/ops_npy.py <outDir>

Writes valid files of every supported dtype (format versions 1.0, 2.0 and 3.0, scalars, empty
arrays, special values) plus files the reader must refuse (Fortran order, big-endian, object,
structured and complex arrays), and manifest.json listing each with its dtype, shape and values.
Floats are written as strings ('NaN', 'Infinity', '-Infinity' or repr) so JSON stays standard.
"""
import json
import os
import sys

import numpy as np

OUT = sys.argv[1]
os.makedirs(OUT, exist_ok=True)
rng = np.random.default_rng(7)
files = {}


def values(a):
    out = []
    for v in a.reshape(-1).tolist():
        if isinstance(v, float):
            out.append("NaN" if v != v else "Infinity" if v == float("inf") else "-Infinity" if v == float("-inf") else repr(v))
        else:
            out.append(int(v))
    return out


def write(name, a, version=None, **kw):
    path = os.path.join(OUT, name + ".npy")
    with open(path, "wb") as f:
        if version is None:
            np.save(f, a, **kw)
        else:
            np.lib.format.write_array(f, a, version=version, **kw)
    files[name] = {"file": name + ".npy", "descr": np.lib.format.dtype_to_descr(a.dtype) if a.dtype.names is None else "structured",
                   "shape": list(a.shape), "values": values(a) if a.dtype.kind in "fiub" else None}


special = [0.0, -0.0, 1.5, -2.25, float("nan"), float("inf"), float("-inf")]
write("f4", rng.standard_normal((2, 3, 4)).astype("<f4"))
write("f4_special", np.array(special + [1e-42, 3.4028235e38], dtype="<f4"))
write("f8", rng.standard_normal((3, 5)).astype("<f8"))
write("f8_special", np.array(special + [5e-324, 1.7976931348623157e308], dtype="<f8"))
write("f2", np.array(special + [6e-8, 65504.0, 1.0 / 3.0, 1e-5], dtype="<f2"))
write("i8", np.array([[0, -1, 2**53 - 1], [-(2**53) + 1, 7, 42]], dtype="<i8"))
write("i4", np.array([0, -(2**31), 2**31 - 1, 5], dtype="<i4"))
write("u1", np.array([[0, 1, 255], [128, 7, 9]], dtype="u1"))
write("b1", np.array([True, False, True, True], dtype="?"))
write("scalar", np.array(3.5, dtype="<f4"))
write("empty", np.zeros((0, 3), dtype="<f4"))
write("v2", rng.standard_normal((4, 2)).astype("<f4"), version=(2, 0))
write("v3", np.arange(6, dtype="<i8").reshape(2, 3), version=(3, 0))
write("fortran", np.asfortranarray(rng.standard_normal((3, 4)).astype("<f4")))
write("bigendian", np.arange(4, dtype=">f4"))
write("object", np.array([1, "a", None], dtype=object), allow_pickle=True)
write("structured", np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))
write("complex", np.zeros(3, dtype="<c8"))
write("u2", np.zeros(3, dtype="<u2"))

with open(os.path.join(OUT, "manifest.json"), "w") as f:
    json.dump({"numpy": np.__version__, "files": files}, f, indent=1)
