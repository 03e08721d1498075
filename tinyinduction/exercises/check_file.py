"""`python -m tinyinduction.exercises check NN [FILE]`: every exercise of a lesson file,
checked at once, without running the lesson.

The file's cells are not run (they train networks). Only its top-level imports, function
and class definitions and constant assignments are executed, from the file itself, so a
traceback shows the student's own file and line. Then each exercise of lesson NN is
checked and gets one verdict: correct, not right yet, or not done yet.
"""
from __future__ import annotations

import ast
import traceback
from dataclasses import dataclass
from pathlib import Path

from .core import CORRECT, NOT_DONE, NOT_RIGHT, CheckResult, exercises_of

NOT_LOADED = "not checked (the file does not load)"
MISSING = "missing (no function of that name in the file)"


def _is_constant(node) -> bool:
    """A value that costs nothing to compute: literals, lambdas, names, attributes."""
    if isinstance(node, (ast.Constant, ast.Lambda, ast.Name, ast.Attribute)):
        return True
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return all(_is_constant(e) for e in node.elts)
    if isinstance(node, ast.UnaryOp):
        return _is_constant(node.operand)
    if isinstance(node, ast.BinOp):
        return _is_constant(node.left) and _is_constant(node.right)
    return False


def definitions_only(source: str, filename: str) -> ast.Module:
    """The module's imports, def/class statements and constant assignments (line numbers
    kept, so tracebacks point into the original file). Raises SyntaxError."""
    tree = ast.parse(source, filename)
    kept = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                             ast.ClassDef)):
            kept.append(node)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None \
                and _is_constant(node.value):
            kept.append(node)
    return ast.Module(body=kept, type_ignores=[])


def load_definitions(path: Path) -> tuple:
    """(namespace, None) or (None, lines saying why the file does not load)."""
    try:
        source = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        return None, [f"cannot read {path}: {error}"]
    filename = str(path)
    try:
        kept = definitions_only(source, filename).body
    except SyntaxError as error:
        return None, [f"{path} has a syntax error at line {error.lineno}: {error.msg}",
                      f"    {(error.text or '').rstrip()}"]
    namespace = {"__name__": "__exercise_check__", "__file__": filename}
    for node in kept:
        code = compile(ast.Module(body=[node], type_ignores=[]), filename, "exec")
        try:
            exec(code, namespace)
        except Exception as error:
            if isinstance(node, (ast.Assign, ast.AnnAssign)):
                continue          # e.g. `history = result.history`: it needs a cell that did not run
            frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == filename]
            lines = [f"loading {path} raised {type(error).__name__}: {error}"]
            for frame in frames:
                lines.append(f'  File "{frame.filename}", line {frame.lineno}')
                if frame.line:
                    lines.append(f"    {frame.line.strip()}")
            return None, lines
    return namespace, None


@dataclass
class FileReport:
    path: Path
    lesson: str
    results: list                 # [(exercise name, verdict, CheckResult or None)]
    problem: list                 # lines: why the file did not load, or []

    @property
    def passed(self) -> bool:
        return not self.problem and bool(self.results) and all(v == CORRECT for _, v, _ in self.results)


def check_file(lesson: str, path: Path) -> FileReport:
    """Check every exercise of `lesson` in the student's file at `path`."""
    exercises = exercises_of(lesson)
    if not exercises:
        raise ValueError(f"lesson {lesson!r} has no exercises")
    namespace, problem = load_definitions(path)
    results = []
    for exercise in exercises:
        if namespace is None:
            results.append((exercise.name, NOT_LOADED, None))
        elif exercise.name not in namespace:
            results.append((exercise.name, MISSING, None))
        else:
            result: CheckResult = exercise.run(namespace[exercise.name])
            if any("raised NameError" in line for line in result.lines):
                result.lines.append("  (check runs only the file's imports, function definitions and "
                                    "constants, not its cells: a function must not use a variable "
                                    "that a cell computes)")
            results.append((exercise.name, result.verdict, result))
    return FileReport(Path(path), lesson, results, problem or [])


def print_report(report: FileReport, details: bool = True) -> None:
    n_right = sum(v == CORRECT for _, v, _ in report.results)
    print(f"{report.path}: lesson {report.lesson}, {n_right} of {len(report.results)} exercises correct")
    for line in report.problem:
        print(f"  {line}")
    if details:
        for name, verdict, result in report.results:
            if result is not None and verdict != CORRECT:
                print()
                print(result)
        print()
    width = max(len(name) for name, _, _ in report.results)
    for name, verdict, _ in report.results:
        print(f"  {name:{width}s}  {verdict}")


__all__ = ["CORRECT", "NOT_DONE", "NOT_RIGHT", "NOT_LOADED", "MISSING", "FileReport", "check_file",
           "definitions_only", "load_definitions", "print_report"]
