"""Measure every lesson's run time, for the table in lessons/README.md.

    python lessons/time_lessons.py              # every lesson, full setting; prints the table
    python lessons/time_lessons.py 02 05        # some lessons
    python lessons/time_lessons.py --write      # ... and put the table into lessons/README.md
    python lessons/time_lessons.py --quick      # the TINYINDUCTION_QUICK=1 setting instead
    python lessons/time_lessons.py --runs DIR   # read runs/demo and reproduce runs from DIR

Each lesson runs in a fresh process from a temporary working directory, with its figures
and training runs in temporary directories (the committed figures are not touched, and
no earlier run is reused unless --runs gives one). Wall time depends on what else the
machine does, so the table also gives the CPU time of the lesson's processes and the
load average before and after; measure on a quiet machine.
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
START, END = "<!-- run-times: written by lessons/time_lessons.py -->", "<!-- /run-times -->"


def time_lesson(path: Path, quick: bool, runs: str | None) -> dict:
    with tempfile.TemporaryDirectory(prefix="time-lessons-") as tmp:
        env = dict(os.environ, MPLBACKEND="Agg", TINYINDUCTION_FIGURES=str(Path(tmp) / "figures"),
                   TINYINDUCTION_RUNS=runs or str(Path(tmp) / "runs"),
                   TINYINDUCTION_QUICK="1" if quick else "0")
        env.pop("TINYINDUCTION_HISTORY", None)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        load_before = os.getloadavg()[0]
        started = time.perf_counter()
        result = subprocess.run([sys.executable, str(path)], cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-2000:] + result.stderr[-3000:])
    return {"lesson": path.name, "wall": wall, "cpu": cpu, "ok": result.returncode == 0,
            "load": (load_before, os.getloadavg()[0]), "output": result.stdout}


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def table(rows: list, quick: bool, runs: str | None) -> str:
    lines = [f"Measured by `python lessons/time_lessons.py{' --quick' if quick else ''}"
             f"{' --runs ' + runs if runs else ''}` on {time.strftime('%Y-%m-%d')}, "
             f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
             f"load average {min(r['load'][0] for r in rows):.1f} to {max(max(r['load']) for r in rows):.1f} "
             "while it ran (2 cores: a load above 2 means other jobs shared the machine and the wall "
             "times are longer than on a quiet one).", "",
             "| lesson | wall time | CPU time | load before, after |", "|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['lesson']}` | {_duration(r['wall'])}{'' if r['ok'] else ' (FAILED)'} | "
                     f"{_duration(r['cpu'])} | {r['load'][0]:.1f}, {r['load'][1]:.1f} |")
    return "\n".join(lines)


def write_table(text: str, guide: Path) -> None:
    content = guide.read_text()
    if START not in content or END not in content:
        raise SystemExit(f"{guide} has no {START} ... {END} markers to write between")
    before, rest = content.split(START, 1)
    guide.write_text(before + START + "\n" + text + "\n" + END + rest.split(END, 1)[1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", help="lesson numbers (default: all)")
    parser.add_argument("--quick", action="store_true", help="TINYINDUCTION_QUICK=1")
    parser.add_argument("--runs", help="runs directory to read (runs/demo, reproduce runs)")
    parser.add_argument("--write", action="store_true", help="write the table into lessons/README.md")
    args = parser.parse_args(argv)
    lessons = sorted(p for p in HERE.glob("[0-9][0-9]_*.py") if not args.lessons or p.name[:2] in args.lessons)
    if not lessons:
        parser.error(f"no lessons {args.lessons} in {HERE}")
    rows = []
    for path in lessons:
        print(f"timing {path.name} ...", file=sys.stderr, flush=True)
        rows.append(time_lesson(path, args.quick, args.runs))
        variant = re.findall(r"^(analysing .*|reading the experiment's run.*|training \d+ steps.*|"
                             r"network run .*?:|no network run at)", rows[-1]["output"], re.M)
        print(f"  {_duration(rows[-1]['wall'])} wall, {_duration(rows[-1]['cpu'])} CPU"
              + (f" ({variant[0]})" if variant else ""), file=sys.stderr, flush=True)
    text = table(rows, args.quick, args.runs)
    print(text)
    if args.write:
        write_table(text, HERE / "README.md")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
