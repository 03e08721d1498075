"""One BLAS thread even when NumPy was imported before tinyinduction (blas.py)."""
import os
import subprocess
import sys

import pytest

SCRIPT = """
import numpy, ctypes
path = [l.split()[-1] for l in open('/proc/self/maps') if 'openblas' in l.lower()][0]
lib = ctypes.CDLL(path)
get = getattr(lib, 'scipy_openblas_get_num_threads64_', None) or lib.openblas_get_num_threads
before = get()
import tinyinduction
print(before, get())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux") or os.cpu_count() < 2,
                    reason="needs Linux and at least 2 cores to see more than one BLAS thread")
def test_numpy_imported_first_still_gets_one_blas_thread():
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                                                            "MKL_NUM_THREADS")}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        pytest.skip(f"no OpenBLAS with a thread getter here: {out.stderr.strip()[-200:]}")
    before, after = map(int, out.stdout.split())
    assert before > 1 and after == 1
    # a user's explicit choice is kept
    out = subprocess.run([sys.executable, "-c", SCRIPT], env={**env, "OPENBLAS_NUM_THREADS": "2"},
                         capture_output=True, text=True)
    assert out.stdout.split() == ["2", "2"]
