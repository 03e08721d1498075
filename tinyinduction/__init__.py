"""tinyinduction: a NumPy-only laboratory for induction heads."""
import os
import sys

from . import blas, memory

# The model's matrices are tiny (at most 512 x 64): a second BLAS thread gains little
# and, when the other core is busy, makes every matmul wait for a time slice (we saw
# 100x slowdowns). One thread unless the user chose otherwise: as an environment default
# (read by NumPy when it loads, and by every process started from here) and, if NumPy
# was imported first, by telling the loaded BLAS directly (blas.py).
for _variable in blas.THREAD_VARIABLES:
    os.environ.setdefault(_variable, "1")
if "numpy" in sys.modules:
    blas.limit_blas_threads(1)

# NumPy's big temporaries reuse freed memory instead of page-faulting (memory.py)
memory.keep_freed_memory()

__version__ = "0.1.0"
