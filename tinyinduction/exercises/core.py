"""Exercises: declaration, registry, and the check that says what is wrong.

See the package docstring (tinyinduction/exercises/__init__.py) for how lessons use it.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import os
import pkgutil
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np

from .compare import as_array, compare_outputs


class ExerciseFailed(AssertionError):
    """A student's function did not pass its exercise's check (the message says why)."""


CORRECT, NOT_RIGHT, NOT_DONE = "correct", "not right yet", "not done yet"
_HERE = str(Path(__file__).resolve().parent) + os.sep   # frames in here are the checker's, not the student's


@dataclass(frozen=True)
class Case:
    """One input to try and the right answer for it.

    description: shown to the student, e.g. "B=2, H=3, T=4, causal mask".
    args:        positional arguments of the student's function.
    expected:    the right output: an array, a number, or a tuple of arrays.
    reference:   where `expected` comes from, e.g. "central finite differences".
    sizes:       the sizes this case uses, e.g. {"C": 3, "T": 7}: when a student's
                 function passes cases of one size and fails another, the message asks
                 whether a size is hard-coded.
    """

    description: str
    args: tuple
    expected: Any
    reference: str
    rtol: float = 1e-6
    atol: float = 1e-9
    kwargs: dict = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Mistake:
    """A typical wrong answer: the check must refuse it and its message must name it.

    description: what the mistake is, e.g. "sums over queries instead of keys"; a
                 student's output equal to this function's is told this description.
    function:    the wrong answer (same signature as the solution).
    named_by:    the words the check's message must contain for this mistake (default:
                 the description); e.g. "opposite sign" when a general hint names it.
    """

    description: str
    function: Callable
    named_by: str = ""

    @property
    def words(self) -> str:
        return self.named_by or self.description


@dataclass(frozen=True)
class Exercise:
    """A function for the student to write, checked against cases.

    name:         the function the student writes (its name in the lesson).
    lesson:       "01", "02", ...: the lesson whose exercise version contains it.
    solution:     the package's own function that solves it. Its signature is the
                  stub's signature; its docstring the stub's, unless `task` is given.
    make_cases:   rng -> list of Case (inputs and right answers; draw with the rng only).
    task:         the stub's docstring: shapes and maths (default: solution's docstring).
    output_names: a name per output, e.g. ("dq", "dk"), for messages.
    output_axes:  per output, a name per axis, e.g. (("batch", "pos", "head", "d_head"),).
    properties:   callables (output, case) -> None or a message: what must hold of any
                  right answer (rows sum to 1, ...), checked after the values.
    hint:         one line shown under a failure.
    wrong_answers: Mistake(...) or (description, function) pairs: typical mistakes. The
                  test suite asserts that the check refuses each with a message that names
                  it; a student's output equal to a mistake's is told which mistake it is.
    """

    name: str
    lesson: str
    solution: Callable
    make_cases: Callable[[np.random.Generator], list]
    task: str = ""
    output_names: tuple = ("output",)
    output_axes: tuple = ()
    properties: tuple = ()
    hint: str = ""
    wrong_answers: tuple = ()
    seed: int = 0

    def __post_init__(self):
        if not self.name.isidentifier():
            raise ValueError(f"Exercise name {self.name!r}: must be a Python identifier")
        if not (len(self.lesson) == 2 and self.lesson.isdigit()):
            raise ValueError(f"Exercise lesson {self.lesson!r}: must be two digits, e.g. '01'")
        if not callable(self.solution):
            raise TypeError(f"Exercise solution {self.solution!r}: must be a function")
        object.__setattr__(self, "wrong_answers", tuple(
            m if isinstance(m, Mistake) else Mistake(*m) for m in self.wrong_answers))

    @property
    def docstring(self) -> str:
        return inspect.cleandoc(self.task) if self.task else (inspect.getdoc(self.solution) or "")

    def cases(self) -> list:
        return list(self.make_cases(np.random.default_rng(self.seed)))

    def run(self, student: Callable) -> "CheckResult":
        """Try `student` on every case; the first failing case is reported in detail."""
        if not callable(student):
            return CheckResult(self.name, False, [f"{self.name} is {student!r}, not a function"],
                               NOT_RIGHT)
        cases = self.cases()
        failures, passed, outputs = [], [], {}
        for index, case in enumerate(cases):
            problem, outputs[index] = self._run_case(student, case)
            if problem is None:
                passed.append(index)
            else:
                failures.append((index, case, problem))
                if problem.not_done:         # a stub: the other cases would say the same
                    break
        if not failures:
            references = sorted({case.reference for case in cases})
            return CheckResult(self.name, True, [
                f"{self.name}: correct on all {len(cases)} cases (right answers from "
                f"{'; '.join(references)}). The package's solution: {solution_location(self)}"],
                CORRECT)
        index, case, problem = failures[0]
        if problem.not_done:
            return CheckResult(self.name, False, [f"{self.name}: not done yet ({problem.lines[0]})"],
                               NOT_DONE)
        where = f"case {index + 1} of {len(cases)} ({case.description})"
        tally = (f"; cases {_numbers(passed)} passed, {_numbers(i for i, _, _ in failures)} failed"
                 if passed else "; every case failed")
        lines = [f"{self.name}: not right yet. {where}{tally}", *[f"  {line}" for line in problem.lines]]
        lines += [f"  {line}" for line in self._diagnose(cases, outputs, [i for i, _, _ in failures])]
        size_hint = _size_hint([cases[i] for i in passed], [c for _, c, _ in failures])
        if size_hint:
            lines.append(f"  {size_hint}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        lines.append(f"  stuck? show_solution({self.name!r}) prints the package's solution")
        return CheckResult(self.name, False, lines, NOT_RIGHT)

    def _diagnose(self, cases, outputs, failed) -> list:
        """Name a known mistake whose output equals the student's on every case, and on
        at least one failed case (not only where both are right)."""
        if all(outputs.get(i) is None for i in failed):
            return []
        for mistake in self.wrong_answers:
            theirs = {i: _output_of(mistake.function, cases[i]) for i, out in outputs.items() if out is not None}
            if (all(_same_output(outputs[i], theirs[i]) for i in theirs)
                    and any(i in theirs for i in failed)):
                return [f"your output is exactly what this mistake gives: {mistake.description}"]
        return []

    def _run_case(self, student, case) -> tuple:
        """(None or the _Problem, the student's output or None)."""
        originals = [np.array(a, copy=True) if isinstance(a, np.ndarray) else None for a in case.args]
        args = _fresh(case.args)
        try:
            with np.errstate(all="ignore"):   # a nan or inf is reported below, by element
                got = student(*args, **case.kwargs)
        except NotImplementedError as error:
            return _Problem([f"your function raised NotImplementedError: {error}"], not_done=True), None
        except Exception as error:   # the student's bug: the message and their lines
            return _Problem([f"your function raised {type(error).__name__}: {error}",
                             *student_traceback(error)]), None
        for position, (before, after) in enumerate(zip(originals, args)):
            if before is not None and not np.array_equal(before, after, equal_nan=True):
                return _Problem([f"your function changed its input argument {position + 1} in place; "
                                 "compute new arrays instead (the package's functions are pure)"]), None
        problem = compare_outputs(got, case.expected, self.output_names, self.output_axes,
                                  case.rtol, case.atol, case.reference)
        if problem is None:
            for prop in self.properties:
                message = prop(got, case)
                if message:
                    problem = [message]
                    break
        return (None if problem is None else _Problem(problem)), got


@dataclass
class _Problem:
    lines: list
    not_done: bool = False


def _fresh(args) -> tuple:
    """Copies of the array arguments, so nothing a function does reaches the case."""
    return tuple(np.array(a, copy=True) if isinstance(a, np.ndarray) else a for a in args)


def _output_of(function, case):
    """A mistake's output on a case (None if it cannot handle it)."""
    try:
        with np.errstate(all="ignore"):
            return function(*_fresh(case.args), **case.kwargs)
    except Exception:
        return None


def _numbers(indices) -> str:
    return ", ".join(str(i + 1) for i in indices)


def _same_output(a, b) -> bool:
    if a is None or b is None:
        return False
    if isinstance(a, (tuple, list)) or isinstance(b, (tuple, list)):
        return (isinstance(a, (tuple, list)) and isinstance(b, (tuple, list)) and len(a) == len(b)
                and all(_same_output(x, y) for x, y in zip(a, b)))
    x, y = as_array(a), as_array(b)
    return (x is not None and y is not None and x.shape == y.shape
            and np.allclose(x, y, rtol=1e-9, atol=1e-12, equal_nan=True))


def _size_hint(passed_cases, failed_cases) -> Optional[str]:
    """'It passed with C = 2 and fails with C = 3: ...' when a size separates the passing
    cases from two or more failing ones (one failing case may fail for another reason;
    cases without sizes, e.g. degenerate ones, do not count)."""
    passed_cases = [c for c in passed_cases if c.sizes]
    if not passed_cases or len(failed_cases) < 2 or not failed_cases[0].sizes:
        return None
    seen = {k: {c.sizes.get(k) for c in passed_cases} for k in failed_cases[0].sizes}
    new = [k for k, values in seen.items()
           if None not in values and all(c.sizes.get(k) not in values for c in failed_cases)]
    if not new:
        return None
    before = ", ".join(f"{k} = {' or '.join(str(v) for v in sorted(seen[k]))}" for k in new)
    now = ", ".join(f"{k} = {failed_cases[0].sizes[k]}" for k in new)
    return (f"it passes every case with {before} and fails with {now}: does your code only work "
            f"for {before} (a hard-coded size, or a hard-coded list of positions)?")


def student_traceback(error: BaseException) -> list:
    """The frames of the student's own code (not the checker's), innermost last."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not str(Path(f.filename).resolve()).startswith(_HERE)]
    lines = ["traceback of your code (innermost last):"] if frames else []
    for frame in frames:
        lines.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
        if frame.line:
            lines.append(f"    {frame.line.strip()}")
    return lines


@dataclass(frozen=True)
class CheckResult:
    name: str
    passed: bool
    lines: list
    verdict: str = ""        # CORRECT, NOT_RIGHT or NOT_DONE

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        return "\n".join(self.lines)


# ---------------------------------------------------------------- registry


_REGISTRY: dict = {}


def register(exercise: Exercise) -> Exercise:
    """Add an exercise (done at import of tinyinduction/exercises/lessonNN.py)."""
    known = _REGISTRY.get(exercise.name)
    if known is not None and known is not exercise and known.lesson != exercise.lesson:
        raise ValueError(f"exercise name {exercise.name!r} is used by lessons {known.lesson} "
                         f"and {exercise.lesson}; names must be unique")
    _REGISTRY[exercise.name] = exercise
    return exercise


def load_all() -> dict:
    """Import every tinyinduction/exercises/lessonNN.py module; return {name: Exercise}."""
    # the lesson modules sit beside this file (found without importing the package
    # itself, which imports this module: no import circle)
    for module in pkgutil.iter_modules([str(Path(__file__).parent)]):
        if module.name.startswith("lesson"):
            importlib.import_module(f"{__package__}.{module.name}")
    return dict(_REGISTRY)


def get_exercise(name: str) -> Exercise:
    registry = load_all()
    if not isinstance(name, str) or name not in registry:
        close = difflib.get_close_matches(str(name), list(registry), n=3)
        raise KeyError(f"no exercise named {name!r}" + (f"; did you mean {close}?" if close
                       else f"; exercises: {sorted(registry)}"))
    return registry[name]


def exercises_of(lesson: str) -> list:
    """The exercises of one lesson ("01"), in their order of declaration."""
    return [ex for ex in load_all().values() if ex.lesson == lesson]


def solution_location(exercise: Exercise) -> str:
    solution = inspect.unwrap(exercise.solution)
    module = getattr(solution, "__module__", "?")
    return f"{module}.{getattr(solution, '__qualname__', getattr(solution, '__name__', '?'))}"


# ---------------------------------------------------------------- student-facing


def check(name: str, student: Callable, raise_on_failure: bool = True) -> CheckResult:
    """Run exercise `name`'s check on the student's function and print the verdict.

    On failure, prints what is wrong (which case, which shape or element, how far off)
    and raises ExerciseFailed, so running a lesson top to bottom stops at the first
    exercise that is not done yet. raise_on_failure=False only prints.
    """
    result = get_exercise(name).run(student)
    print(result)
    if not result.passed and raise_on_failure:
        raise ExerciseFailed(f"exercise {name} is {result.verdict} (details printed above)") from None
    return result


def show_solution(name: str) -> str:
    """Print (and return) the source of the package's function that solves exercise `name`."""
    exercise = get_exercise(name)
    try:
        source = inspect.getsource(inspect.unwrap(exercise.solution))
    except (OSError, TypeError):
        source = f"(source not available) {solution_location(exercise)}"
    text = f"# the solution of exercise {name}: {solution_location(exercise)}\n{source}"
    print(text)
    return text


def signature_without_annotations(function: Callable) -> str:
    """'(dpattern, pattern)' from a function, without type annotations."""
    sig = inspect.signature(function)
    params = [p.replace(annotation=inspect.Parameter.empty) for p in sig.parameters.values()]
    return str(sig.replace(parameters=params, return_annotation=inspect.Signature.empty))


def stub_source(exercise: Exercise) -> str:
    """The function the exercise version of a lesson gives the student to fill in."""
    doc = exercise.docstring.replace('"""', "'''")
    body = "\n".join(("    " + line).rstrip() for line in doc.splitlines())
    return (f"def {exercise.name}{signature_without_annotations(exercise.solution)}:\n"
            f'    """{body.lstrip()}\n    """\n'
            f"    # your code here: replace the next line\n"
            f"    raise NotImplementedError(\"exercise {exercise.name}: write this function, "
            f"then run this cell again\")\n")

