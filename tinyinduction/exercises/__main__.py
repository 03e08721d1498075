"""python -m tinyinduction.exercises: see tinyinduction/exercises/__init__.py."""
import sys

from .student import main

sys.exit(main())
