"""The documents: the front page (README.md), the course guide (lessons/README.md), the
results page (figures/README.md) and the reference manual (tinyinduction/README.md).

- every figure a document names exists; every figure it shows is named next to the
  command that redraws it, and that command really writes it;
- every relative link resolves (the file exists, the #anchor is one of its headings),
  and the front page's contents reach every section of every document;
- the quick start is two commands, and the test command CI runs is the README's.
"""
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ["README.md", "lessons/README.md", "figures/README.md", "tinyinduction/README.md"]
TEXT = {doc: (ROOT / doc).read_text() for doc in DOCS if (ROOT / doc).is_file()}
README = TEXT["README.md"]
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+\.(?:png|gif))\)|<img src=\"([^\"]+\.(?:png|gif))\"")
# a figure's name anywhere in the text: figures/x.png, ../figures/x.png, x.png, toy_*.png
# (not DIR/figures/x.png or /tmp/x.png: those are not the repository's figures)
FIGURE_NAME = re.compile(r"(?<![\w/.*-])(?:\.\./)?(?:figures/)?([\w*-]+\.(?:png|gif))\b")
COMMAND = re.compile(r"`(python (?:lessons/[\w./-]+\.py|-m tinyinduction[\w.]*(?: [\w-]+)?)[^`]*)`")
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
NEARBY_LINES = 8      # a command counts for a figure when it is this close (or in its table row)


def test_the_four_documents_exist():
    assert set(TEXT) == set(DOCS), f"missing: {set(DOCS) - set(TEXT)}"


# ---------------------------------------------------------------- figures


def _shown_figures():
    shown = []
    for doc, text in TEXT.items():
        for number, line in enumerate(text.splitlines()):
            for match in IMAGE.finditer(line):
                path = (ROOT / doc).parent / (match.group(1) or match.group(2))
                shown.append((doc, number, path.resolve()))
    return shown


def _commands_near(lines, number):
    line = lines[number]
    if line.startswith("|"):              # a table row: the command is in the same row
        return COMMAND.findall(line)
    commands = []
    for offset in range(NEARBY_LINES + 1):
        for near in {number - offset, number + offset}:
            if 0 <= near < len(lines):
                commands += COMMAND.findall(lines[near])
        if commands:
            return commands
    return commands


def _writes(command: str, figure: Path) -> bool:
    """Does `command` write `figure`? Lessons: their source names the file. Package
    commands: a module of the command's package names the file (or its stem)."""
    name = figure.name
    lesson = re.match(r"python (lessons/[\w./-]+\.py)", command)
    if lesson:
        return name in (ROOT / lesson.group(1)).read_text()
    stem = figure.stem
    experiment = re.match(r"python -m tinyinduction reproduce (\w+)", command)
    if experiment:   # the experiment's module names the figure's stem (ctx.figure_path)
        module = ROOT / "tinyinduction" / "experiments" / f"{experiment.group(1)}.py"
        return module.exists() and f'"{stem}' in module.read_text()
    sources = "\n".join(path.read_text() for path in (ROOT / "tinyinduction").rglob("*.py"))
    return name in sources or f'"figures/{stem.split("_")[0]}' in sources


SHOWN = _shown_figures()


def test_the_documents_show_figures():
    assert len([doc for doc, _, _ in SHOWN if doc == "README.md"]) >= 4
    assert len([doc for doc, _, _ in SHOWN if doc == "figures/README.md"]) >= 8


@pytest.mark.parametrize("doc, number, figure", SHOWN,
                         ids=[f"{doc}:{figure.name}" for doc, _, figure in SHOWN])
def test_every_shown_figure_exists_and_is_named_with_the_command_that_redraws_it(doc, number, figure):
    assert figure.is_file(), f"{doc} line {number + 1} shows {figure}, which does not exist"
    lines = TEXT[doc].splitlines()
    commands = _commands_near(lines, number)
    assert commands, f"{doc} line {number + 1} shows {figure.name} without a command next to it"
    assert any(_writes(command, figure) for command in commands), \
        f"none of {commands} (next to {figure.name} in {doc}) writes it"


def named_figures(text):
    return sorted(set(FIGURE_NAME.findall(text)))


@pytest.mark.parametrize("doc", DOCS)
def test_every_figure_a_document_names_exists(doc):
    names = named_figures(TEXT[doc])
    missing = [name for name in names if not list((ROOT / "figures").glob(name))]
    assert not missing, f"{doc} names figures that do not exist: {missing}"


def test_the_figure_name_rule_finds_names_and_skips_other_directories():
    text = ("`figures/a.png`, ![x](../figures/b.png), `c.gif`, `toy_*.png`, "
            "`DIR/figures/d.png`, /tmp/e.png, figures/exercises/f.png")
    assert named_figures(text) == ["a.png", "b.png", "c.gif", "toy_*.png"]


# ---------------------------------------------------------------- links and contents


def slug(title: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation but - and _ dropped, spaces -."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def headings(text: str) -> list[tuple[int, str]]:
    """(level, title) of every heading outside code blocks."""
    found, fence = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fence = not fence
        match = None if fence else re.match(r"^(#{1,6}) (.+)", line)
        if match:
            found.append((len(match.group(1)), match.group(2).strip()))
    return found


def _resolve(doc: str, target: str):
    """(file, anchor) a relative link of `doc` points at; None for an external link."""
    if re.match(r"[a-z]+:", target):
        return None
    path, _, anchor = target.partition("#")
    where = (ROOT / doc).parent / path if path else ROOT / doc
    return where.resolve(), anchor


def _links(doc):
    return [target for target in LINK.findall(TEXT[doc]) if _resolve(doc, target) is not None]


@pytest.mark.parametrize("doc", DOCS)
def test_every_relative_link_resolves(doc):
    broken = []
    for target in _links(doc):
        where, anchor = _resolve(doc, target)
        if not where.exists():
            broken.append(f"{target}: no such file")
        elif anchor and (where.suffix != ".md" or anchor not in
                         {slug(title) for _, title in headings(where.read_text())}):
            broken.append(f"{target}: no heading with anchor #{anchor}")
    assert not broken, f"{doc}: " + "; ".join(broken)


def _contents():
    start = README.index("\n## Contents\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end != -1 else len(README)]


def test_the_contents_reach_every_section_of_every_document():
    linked = set()
    for target in LINK.findall(_contents()):
        where, anchor = _resolve("README.md", target)
        linked.add((where, anchor))
    missing = [f"{doc}#{slug(title)}" for doc in DOCS for level, title in headings(TEXT[doc])
               if level in (2, 3) and title != "Contents"
               and ((ROOT / doc).resolve(), slug(title)) not in linked]
    assert not missing, f"sections the README's contents do not link: {missing}"


def test_the_slug_follows_github():
    assert slug("Paper experiments: `reproduce`") == "paper-experiments-reproduce"
    assert slug("Text tasks and Olsson et al.'s measures") == "text-tasks-and-olsson-et-als-measures"
    assert slug("Subcircuits (Singh et al. Fig. 5b)") == "subcircuits-singh-et-al-fig-5b"


# ---------------------------------------------------------------- the front page


def test_the_front_page_is_short():
    assert len(README.splitlines()) <= 400


def test_quick_start_is_two_commands_and_keeps_the_test_command_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text()
    install, test_command = 'pip install -e ".[test]"', "python -m pytest"
    assert f"{install} && {test_command}" in ci
    start = README.index("## Quick start")
    quick_start = README[start:README.index("\n## ", start + 1)]
    block = re.search(r"```bash\n(.*?)```", quick_start, re.S).group(1)
    commands = block.strip().splitlines()
    assert len(commands) == 2, commands
    assert commands[0].startswith("python3 -m venv") and install in commands[0]
    assert commands[1].startswith("python -m tinyinduction demo")
    assert f"`{install} && {test_command}`" in quick_start      # what to do next: the tests
    for guide in ("lessons/README.md", "figures/README.md", "tinyinduction/README.md"):
        assert f"]({guide})" in quick_start, f"the quick start does not point to {guide}"


def _table_rows(text):
    return [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]


def test_the_headline_table_is_the_results_pages():
    """`reproduce all` writes both from the same results: they must agree."""
    start, end = README.index("<!-- headline"), README.index("<!-- headline end -->")
    assert _table_rows(README[start:end]), "the front page has no headline table"
    page = TEXT["figures/README.md"]
    section = page[page.index("## Headline results"):]
    section = section[:section.index("\n## ", 1)]
    front = [row.replace("](figures/README.md#", "](#") for row in _table_rows(README[start:end])]
    assert front == _table_rows(section)
