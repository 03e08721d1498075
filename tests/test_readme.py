"""The README: every figure it shows exists and is named next to the command that
redraws it, and that command really writes that figure; the quick start keeps the
exact test command that CI runs."""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
LINES = README.splitlines()
IMAGE = re.compile(r"!\[[^\]]*\]\((figures/[^)\s]+\.png)\)|<img src=\"(figures/[^\"]+\.png)\"")
COMMAND = re.compile(r"`(python (?:lessons/[\w./-]+\.py|-m tinyinduction[\w.]*(?: [\w-]+)?)[^`]*)`")
NEARBY_LINES = 8      # a command counts for a figure when it is this close (or in its table row)


def _shown_figures():
    shown = []
    for number, line in enumerate(LINES):
        for match in IMAGE.finditer(line):
            shown.append((number, match.group(1) or match.group(2)))
    return shown


def _commands_near(number):
    line = LINES[number]
    if line.startswith("|"):              # a table row: the command is in the same row
        return COMMAND.findall(line)
    commands = []
    for offset in range(NEARBY_LINES + 1):
        for near in {number - offset, number + offset}:
            if 0 <= near < len(LINES):
                commands += COMMAND.findall(LINES[near])
        if commands:
            return commands
    return commands


def _writes(command: str, figure: str) -> bool:
    """Does `command` write `figure`? Lessons: their source names the file. Package
    commands: a module of the command's package names the file (or its stem)."""
    name = Path(figure).name
    lesson = re.match(r"python (lessons/[\w./-]+\.py)", command)
    if lesson:
        return name in (ROOT / lesson.group(1)).read_text()
    stem = name.removesuffix(".png")
    experiment = re.match(r"python -m tinyinduction reproduce (\w+)", command)
    if experiment:   # the experiment's module names the figure's stem (ctx.figure_path)
        module = ROOT / "tinyinduction" / "experiments" / f"{experiment.group(1)}.py"
        return module.exists() and f'"{stem}' in module.read_text()
    sources = "\n".join(path.read_text() for path in (ROOT / "tinyinduction").rglob("*.py"))
    return name in sources or f'"figures/{stem.split("_")[0]}' in sources


SHOWN = _shown_figures()


def test_the_readme_shows_figures():
    assert len(SHOWN) >= 4


@pytest.mark.parametrize("number, figure", SHOWN, ids=[f for _, f in SHOWN])
def test_every_shown_figure_exists_and_is_named_with_the_command_that_redraws_it(number, figure):
    assert (ROOT / figure).is_file(), f"README line {number + 1} shows {figure}, which does not exist"
    commands = _commands_near(number)
    assert commands, f"README line {number + 1} shows {figure} without a command next to it"
    assert any(_writes(command, figure) for command in commands), \
        f"none of {commands} (next to {figure}) writes it"


def test_quick_start_keeps_the_commands_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = 'pip install -e ".[test]" && python -m pytest'
    assert test_command in ci
    quick_start = README[README.index("## Quick start"):README.index("## Quick start") + 1500]
    assert test_command in quick_start
    assert "pip install . && python -m tinyinduction demo" in quick_start
    assert quick_start.index("python3 -m venv") < quick_start.index("pip install .")
