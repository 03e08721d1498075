"""Exercises: functions a student writes, checks that say what is wrong, and the
package's own functions as the solutions.

FOR STUDENTS
    python -m tinyinduction.exercises 01        # writes lessons/exercises/01_....py
    python -m tinyinduction.exercises --all     # every lesson's file that is missing
    python -m tinyinduction.exercises check 01  # check every exercise of that file at once
    python -m tinyinduction.exercises check 01 FILE    # ... of another file (a teacher's marking)
    python -m tinyinduction.exercises --list    # the exercises of every lesson
    python -m tinyinduction.exercises --solution softmax_backward_tl   # print a solution

The exercise version is the lesson with each solution replaced by a function to fill
in (its docstring gives the shapes and the maths; its body raises NotImplementedError).
Run it cell by cell (or top to bottom). Under each function a check runs it on several
inputs, of several sizes, and either says it is right or prints what is wrong: which
input, which output shape or which element, the right value and how far off it is, and
recognisable mistakes (opposite sign, a constant factor, axes in another order, an input
changed in place, a size that only works for the cases it passed, a known typical
mistake by name). When your function raises, the check shows the lines of your own code
that raised. A failed check raises ExerciseFailed, so a run stops at the first
unfinished exercise. `show_solution("name")` prints the package's function that solves
it. An existing exercise file is never overwritten (it holds your work) unless you pass
--force, which keeps the old one as a .bak file. The exercise version writes its
figures to figures/exercises/, never over the committed figures.

`check NN [FILE]` does not run the lesson (no training): it loads the file's imports,
function definitions and constants, checks every exercise of lesson NN and prints one
verdict per exercise (correct, not right yet, not done yet). Exit status: 0 if all are
correct, 1 if not, 2 for a usage error (no such file or lesson).

FOR LESSON AUTHORS: declaring an exercise (one mechanism for every lesson)
1. In tinyinduction/exercises/lessonNN.py (one module per lesson, found automatically),
   register an Exercise: its name (the function the student writes), lesson "NN", the
   package's function that solves it (`solution`), a task docstring (shapes and maths),
   and make_cases(rng) -> [Case(description, args, expected, reference)], where
   `expected` comes from the package's own checks: numerical_gradient(...) (central
   finite differences) for a backward pass, a simulation, or the solution itself.
2. In the lesson, the exercise cell starts with the line `# EXERCISE: <name>`, binds
   <name> to the solution on lines that end with `# SOLUTION`, then checks it:
       # %%
       # EXERCISE: softmax_backward_tl
       from tinyinduction.tl_layout import softmax_backward as softmax_backward_tl  # SOLUTION
       check("softmax_backward_tl", softmax_backward_tl)
   Any other line ending in `# SOLUTION` (e.g. `show_solution(...)  # SOLUTION`) is
   left out of the exercise version too.
3. Save figures under `figures_dir()` (tinyinduction.paths): the exercise version
   rewrites that call to figures_dir("exercises").
4. Give cases of several sizes, and say them: Case(..., sizes={"C": 3, "T": 7}). A
   function that passes every case of one size and fails another is asked whether it
   hard-codes that size.
5. List typical mistakes as `wrong_answers`: Mistake(description, function[, named_by]).
   A student whose output equals a mistake's on every case is told its description.
   tests/test_exercises.py checks, for every registered exercise, that the check passes
   on the solution, refuses generic mistakes (None, a stub, an exception, zeros, the
   opposite sign, a factor 1.41, one element off, an extra axis, transposed axes, an
   input changed in place) and each listed mistake, every one with a message that names
   it; tests/test_lessons.py runs every lesson (TINYINDUCTION_QUICK=1) and every exercise
   version, which must stop at its first exercise with the check's message.
"""
from .compare import compare_outputs, numerical_gradient
from .core import (Case, CheckResult, Exercise, ExerciseFailed, Mistake, check, exercises_of,
                   get_exercise, load_all, register, show_solution, stub_source)
from .reveal import reveal

__all__ = ["Case", "CheckResult", "Exercise", "ExerciseFailed", "Mistake", "check", "compare_outputs",
           "exercises_of", "get_exercise", "load_all", "numerical_gradient", "register",
           "reveal", "show_solution", "stub_source"]
