"""tinyinduction: a NumPy-only laboratory for induction heads."""

__version__ = "0.1.0"
