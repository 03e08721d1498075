"""tinyinduction: a NumPy-only laboratory for induction heads."""
import os

# The model's matrices are tiny (at most 512 x 64): a second BLAS thread gains little
# and, when the other core is busy, makes every matmul wait for a time slice (we saw
# 100x slowdowns). One thread unless the user chose otherwise. This only takes effect
# if NumPy was not imported before tinyinduction.
for _variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")

__version__ = "0.1.0"
