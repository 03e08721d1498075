"""One BLAS thread, even when NumPy was imported before tinyinduction.

The model's matrices are tiny: a second BLAS thread gains little, and when the other
core is busy every matmul waits for a time slice (10-100x slower steps were measured).
tinyinduction/__init__.py sets OPENBLAS_NUM_THREADS=1 (and OMP/MKL) as a default, but
that only works before NumPy loads its BLAS. Lessons and notebooks often import NumPy
first, and sweep workers inherit their parent's BLAS; for them, limit_blas_threads()
calls the loaded OpenBLAS's own set_num_threads. Linux only (it finds the library in
/proc/self/maps); elsewhere it does nothing. It never raises.
"""
from __future__ import annotations

import ctypes
import os

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads_64_",
            "openblas_set_num_threads64_", "openblas_set_num_threads", "MKL_Set_Num_Threads")


def _loaded_blas_libraries() -> list[str]:
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps if "blas" in line.lower() or "mkl_rt" in line}
    except OSError:
        return []
    return sorted(p for p in paths if p.startswith("/"))


THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
# the user's own choice wins: recorded when tinyinduction is first imported
USER_CHOSE_THREADS = any(variable in os.environ for variable in THREAD_VARIABLES)


def limit_blas_threads(n: int = 1) -> int:
    """Set the loaded BLAS libraries to n threads (unless the user set one of
    THREAD_VARIABLES before importing tinyinduction); how many libraries were set."""
    if USER_CHOSE_THREADS:
        return 0
    done = 0
    for path in _loaded_blas_libraries():
        try:
            library = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SETTERS:
            setter = getattr(library, name, None)
            if setter is not None:
                setter(ctypes.c_int(n))
                done += 1
                break
    return done
