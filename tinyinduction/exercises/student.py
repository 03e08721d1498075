"""Exercise versions of the lessons, and the command line `python -m tinyinduction.exercises`.

An exercise version is the lesson with every solution line (a line ending in
`# SOLUTION`) removed and, in each `# EXERCISE: <name>` cell, a stub function put where
the solution was: the solution's signature, a docstring with the shapes and the maths,
and a body that raises NotImplementedError. Its figures go to figures/exercises/.
"""
from __future__ import annotations

import argparse
import errno
import re
import shutil
import sys
from pathlib import Path

from ..paths import lessons_dir
from .check_file import check_file, print_report
from .core import exercises_of, get_exercise, load_all, show_solution, stub_source

EXERCISE_LINE = re.compile(r"^# EXERCISE: (\w+)\s*$")
SOLUTION_SUFFIX = "# SOLUTION"
CELL_LINE = re.compile(r"^# %%")
FIGURES_CALL = re.compile(r"figures_dir\((root=\w+)?\)")     # figures_dir() or figures_dir(root=ROOT)


def _student_figures(match) -> str:
    return 'figures_dir("exercises"' + (f", {match.group(1)})" if match.group(1) else ")")


def exercise_version(source: str, lesson: str, origin: str = "") -> str:
    """The lesson source with solutions replaced by stubs (see the module docstring)."""
    declared = {ex.name for ex in exercises_of(lesson)}
    out, current, stub_written, found = [], None, False, []

    def close_block():
        if current is not None and not stub_written:
            raise ValueError(f"lesson {lesson}: the cell of exercise {current!r} has no line ending "
                             f"in {SOLUTION_SUFFIX!r}, so there is nothing to replace by a stub")

    for number, line in enumerate(source.splitlines(keepends=True), start=1):
        bare = line.rstrip("\n")
        marker = EXERCISE_LINE.match(bare)
        if marker or CELL_LINE.match(bare):
            close_block()
            current, stub_written = None, False
        if marker:
            current = marker.group(1)
            if current not in declared:
                raise ValueError(f"lesson {lesson}, line {number}: exercise {current!r} is not "
                                 f"declared for lesson {lesson}; declared: {sorted(declared)}")
            found.append(current)
        if bare.rstrip().endswith(SOLUTION_SUFFIX):
            if bare[:1].isspace():
                raise ValueError(f"lesson {lesson}, line {number}: solution lines must not be "
                                 "indented (the stub replaces whole top-level lines)")
            if current is not None and not stub_written:
                out.append(stub_source(get_exercise(current)))
                stub_written = True
            continue
        out.append(FIGURES_CALL.sub(_student_figures, line))
    close_block()
    missing = declared - set(found)
    if missing:
        raise ValueError(f"lesson {lesson}: exercises {sorted(missing)} are declared but have no "
                         "'# EXERCISE: <name>' cell in the lesson")
    header = (f"# Exercise version of {origin or 'lesson ' + lesson}, written by "
              f"`python -m tinyinduction.exercises {lesson}`.\n"
              "# Fill in every function that raises NotImplementedError, then run its cell: the\n"
              "# check under it says what is wrong, or that it is right. Figures go to figures/exercises/.\n"
              f"# Check every exercise of this file at once: python -m tinyinduction.exercises check {lesson}\n")
    return header + "".join(out)


def find_lessons(directory: Path) -> dict:
    """{"01": path of lessons/01_*.py, ...} in `directory`."""
    lessons = {}
    for path in sorted(Path(directory).glob("[0-9][0-9]_*.py")):
        lessons[path.name[:2]] = path
    return lessons


def _backup_name(path: Path) -> Path:
    for n in range(1, 1000):
        candidate = path.with_name(f"{path.name}.{n}.bak")
        if not candidate.exists():
            return candidate
    raise OSError(f"too many backups of {path}")


def write_exercise_version(lesson: str, lessons: Path, out: Path, force: bool = False) -> Path:
    """Write lessons/exercises/NN_....py; an existing file (a student's work) is kept
    unless force=True, which first copies it to NN_....py.N.bak."""
    available = find_lessons(lessons)
    if lesson not in available:
        raise ValueError(f"lesson {lesson!r}: no file {lessons}/{lesson}_*.py; "
                         f"lessons: {sorted(available)}")
    source_path = available[lesson]
    text = exercise_version(source_path.read_text(), lesson, f"lessons/{source_path.name}")
    out.mkdir(parents=True, exist_ok=True)
    target = out / source_path.name
    if target.exists():
        if not force:
            raise FileExistsError(errno.EEXIST, f"{target} exists (your work?); it is kept. Use --force "
                                  "to write a fresh copy (the old one is kept as a .bak file)", str(target))
        backup = _backup_name(target)
        shutil.copy2(target, backup)
        print(f"kept your previous file as {backup}")
    target.write_text(text)
    return target


def default_exercise_file(lesson: str, lessons: Path) -> Path:
    """lessons/exercises/NN_....py, the file `python -m tinyinduction.exercises NN` writes."""
    available = find_lessons(lessons)
    if lesson not in available:
        raise ValueError(f"lesson {lesson!r}: no file {lessons}/{lesson}_*.py; lessons: {sorted(available)}")
    return lessons / "exercises" / available[lesson].name


def _lessons_dir(option) -> Path:
    lessons = Path(option) if option else lessons_dir()
    if lessons is None or not lessons.is_dir():
        raise ValueError("no lessons/ directory found: run this from your checkout of tinyinduction "
                         "(or install it with pip install -e .), or give --lessons-dir")
    return lessons


def check_main(argv) -> int:
    """python -m tinyinduction.exercises check NN [FILE]: 0 if every exercise is correct."""
    parser = argparse.ArgumentParser(
        prog="python -m tinyinduction.exercises check",
        description="Check every exercise of a lesson's exercise file at once, without running the "
                    "lesson (its training). One verdict per exercise; exit status 0 only if all "
                    "are correct, 1 if not, 2 for a usage error.")
    parser.add_argument("lesson", help="lesson number, e.g. 01")
    parser.add_argument("file", nargs="?", help="the exercise file (default: lessons/exercises/NN_*.py "
                                                "of this checkout)")
    parser.add_argument("--lessons-dir", help="where the lessons are (default: this checkout's lessons/)")
    parser.add_argument("--brief", action="store_true", help="only the verdicts, no details")
    args = parser.parse_args(argv)
    try:
        registry = load_all()
        with_exercises = sorted({ex.lesson for ex in registry.values()})
        if args.lesson not in with_exercises:
            raise ValueError(f"lesson {args.lesson!r} has no exercises; lessons with exercises: {with_exercises}")
        path = Path(args.file) if args.file else default_exercise_file(args.lesson, _lessons_dir(args.lessons_dir))
        if not path.is_file():
            raise ValueError(f"{path}: no such file" + ("" if args.file else
                             f"; write it with `python -m tinyinduction.exercises {args.lesson}`"))
        report = check_file(args.lesson, path)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print_report(report, details=not args.brief)
    return 0 if report.passed else 1


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["check"]:
        return check_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="python -m tinyinduction.exercises",
        description="Write the exercise version of a lesson (functions to fill in, with checks), "
                    "list the exercises, or print a solution. "
                    "`python -m tinyinduction.exercises check NN [FILE]` checks a whole exercise file.")
    parser.add_argument("lessons", nargs="*", help="lesson numbers, e.g. 01 02")
    parser.add_argument("--all", action="store_true",
                        help="every lesson that has exercises (existing files are kept)")
    parser.add_argument("--list", action="store_true", help="list the exercises of every lesson")
    parser.add_argument("--solution", metavar="NAME", help="print the solution of exercise NAME")
    parser.add_argument("--out", help="output directory (default lessons/exercises)")
    parser.add_argument("--lessons-dir", help="where the lessons are (default: this checkout's lessons/)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing exercise file (it is copied to a .bak file first)")
    args = parser.parse_args(argv)
    try:
        if args.solution is not None:
            others = [text for text, given in (("lesson numbers " + " ".join(args.lessons), args.lessons),
                                               ("--all", args.all), ("--list", args.list)) if given]
            if others:
                raise ValueError(f"--solution {args.solution} prints one solution and takes nothing "
                                 f"else; drop {' and '.join(others)}")
            show_solution(args.solution)
            return 0
        if args.list and (args.lessons or args.all):
            raise ValueError("--list lists every lesson's exercises and takes nothing else; drop "
                             + ("lesson numbers " + " ".join(args.lessons) if args.lessons else "--all"))
        registry = load_all()
        with_exercises = sorted({ex.lesson for ex in registry.values()})
        if args.list:
            for lesson in with_exercises:
                print(f"lesson {lesson}: " + ", ".join(ex.name for ex in exercises_of(lesson)))
            return 0
        if args.all and args.lessons:
            raise ValueError(f"give lesson numbers or --all, not both (got {' '.join(args.lessons)} and --all)")
        if not (args.all or args.lessons):
            parser.error("give lesson numbers (e.g. 01), --all, --list or --solution NAME")
        lessons = _lessons_dir(args.lessons_dir)
        chosen = [n for n in with_exercises if n in find_lessons(lessons)] if args.all else args.lessons
        for lesson in chosen:
            if not exercises_of(lesson):
                raise ValueError(f"lesson {lesson!r} has no exercises; lessons with exercises: {with_exercises}")
        out = Path(args.out) if args.out else lessons / "exercises"
        kept = []
        for lesson in chosen:
            names = ", ".join(ex.name for ex in exercises_of(lesson))
            try:
                path = write_exercise_version(lesson, lessons, out, args.force)
            except FileExistsError as error:
                kept.append(lesson)
                print(f"kept {error.filename} (your work; --force writes a fresh copy and keeps "
                      "yours as a .bak file)")
                continue
            print(f"wrote {path} ({len(exercises_of(lesson))} exercises: {names})")
        if kept and not args.all:
            print(f"error: {len(kept)} of the files you asked for exist and were kept", file=sys.stderr)
            return 2
        if len(chosen) == 1:
            print(f"check your work: python -m tinyinduction.exercises check {chosen[0]}")
        elif chosen:
            print(f"check your work: python -m tinyinduction.exercises check NN (e.g. {chosen[0]})")
    except (ValueError, KeyError, OSError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0
