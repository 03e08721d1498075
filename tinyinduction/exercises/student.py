"""Exercise versions of the lessons, and the command line `python -m tinyinduction.exercises`.

An exercise version is the lesson with every solution line (a line ending in
`# SOLUTION`) removed and, in each `# EXERCISE: <name>` cell, a stub function put where
the solution was: the solution's signature, a docstring with the shapes and the maths,
and a body that raises NotImplementedError. Its figures go to figures/exercises/.
"""
from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

from ..paths import lessons_dir
from .core import exercises_of, get_exercise, load_all, show_solution, stub_source

EXERCISE_LINE = re.compile(r"^# EXERCISE: (\w+)\s*$")
SOLUTION_SUFFIX = "# SOLUTION"
CELL_LINE = re.compile(r"^# %%")
FIGURES_CALL = "figures_dir()"
STUDENT_FIGURES_CALL = 'figures_dir("exercises")'


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
        out.append(line.replace(FIGURES_CALL, STUDENT_FIGURES_CALL))
    close_block()
    missing = declared - set(found)
    if missing:
        raise ValueError(f"lesson {lesson}: exercises {sorted(missing)} are declared but have no "
                         "'# EXERCISE: <name>' cell in the lesson")
    header = (f"# Exercise version of {origin or 'lesson ' + lesson}, written by "
              f"`python -m tinyinduction.exercises {lesson}`.\n"
              "# Fill in every function that raises NotImplementedError, then run its cell: the\n"
              "# check under it says what is wrong, or that it is right. Figures go to figures/exercises/.\n")
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
            raise FileExistsError(f"{target} exists (your work?); it is kept. Use --force to "
                                  "write a fresh copy (the old one is kept as a .bak file)")
        backup = _backup_name(target)
        shutil.copy2(target, backup)
        print(f"kept your previous file as {backup}")
    target.write_text(text)
    return target


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tinyinduction.exercises",
        description="Write the exercise version of a lesson (functions to fill in, with checks), "
                    "list the exercises, or print a solution.")
    parser.add_argument("lessons", nargs="*", help="lesson numbers, e.g. 01 02")
    parser.add_argument("--all", action="store_true", help="every lesson that has exercises")
    parser.add_argument("--list", action="store_true", help="list the exercises of every lesson")
    parser.add_argument("--solution", metavar="NAME", help="print the solution of exercise NAME")
    parser.add_argument("--out", help="output directory (default lessons/exercises)")
    parser.add_argument("--lessons-dir", help="where the lessons are (default: this checkout's lessons/)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite an existing exercise file (it is copied to a .bak file first)")
    args = parser.parse_args(argv)
    try:
        if args.solution:
            show_solution(args.solution)
            return 0
        registry = load_all()
        if args.list:
            for lesson in sorted({ex.lesson for ex in registry.values()}):
                print(f"lesson {lesson}: " + ", ".join(ex.name for ex in exercises_of(lesson)))
            return 0
        lessons = Path(args.lessons_dir) if args.lessons_dir else lessons_dir()
        if lessons is None or not lessons.is_dir():
            raise ValueError("no lessons/ directory found: install from a checkout "
                             "(pip install -e .) or give --lessons-dir")
        chosen = sorted({ex.lesson for ex in registry.values()}) if args.all else args.lessons
        if not chosen:
            parser.error("give lesson numbers (e.g. 01), --all, --list or --solution NAME")
        out = Path(args.out) if args.out else lessons / "exercises"
        for lesson in chosen:
            if not exercises_of(lesson):
                raise ValueError(f"lesson {lesson!r} has no exercises; lessons with exercises: "
                                 f"{sorted({ex.lesson for ex in registry.values()})}")
            path = write_exercise_version(lesson, lessons, out, args.force)
            print(f"wrote {path} ({len(exercises_of(lesson))} exercises: "
                  f"{', '.join(ex.name for ex in exercises_of(lesson))})")
    except (ValueError, KeyError, FileExistsError, OSError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2
    return 0
