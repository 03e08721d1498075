"""Answers to a lesson's "predict first" questions, shown only when asked.

A lesson asks a question in a markdown cell, computes in the next cell(s), and gives the
answer in a cell of its own:

    reveal("02.plateau", level=f"{phase.plateau_level:.3f}")

The text lives in lessons/answers/02_<name>.md under the heading `## plateau`, not in
the lesson, so a student reads it only after running that cell. Its numbers are
placeholders ({level}, or with a format spec: {level:.3f}) filled from the run, so the
words cannot drift from the output. A placeholder without a value, or a value without a
placeholder, is refused.
"""
from __future__ import annotations

import re
import string
import sys
import textwrap
from pathlib import Path

from ..paths import lesson_root

KEY = re.compile(r"^(\d\d)\.([\w-]+)$")
HEADING = re.compile(r"^## ([\w-]+)\s*$")


def answers_file(lesson: str, root: Path) -> Path:
    """root/lessons/answers/NN_*.md"""
    found = sorted((Path(root) / "lessons" / "answers").glob(f"{lesson}_*.md"))
    if not found:
        raise FileNotFoundError(f"no answers for lesson {lesson}: expected {root}/lessons/answers/{lesson}_*.md")
    return found[0]


def read_answers(path: Path) -> dict:
    """{key: text} of an answers file: the text under each `## key` heading."""
    answers, key, lines = {}, None, []
    for line in Path(path).read_text().splitlines():
        match = HEADING.match(line)
        if match:
            if key is not None:
                answers[key] = "\n".join(lines).strip()
            key, lines = match.group(1), []
            if key in answers:
                raise ValueError(f"{path}: the answer {key!r} appears twice")
        elif key is not None:
            lines.append(line)
    if key is not None:
        answers[key] = "\n".join(lines).strip()
    return answers


def placeholders(text: str) -> set:
    """The {names} an answer's text needs."""
    return {field.split(".")[0].split("[")[0] for _, field, _, _ in string.Formatter().parse(text) if field}


def answer_text(key: str, root: Path, **values) -> str:
    """The answer `key` ("NN.name") with its placeholders filled in."""
    match = KEY.match(key) if isinstance(key, str) else None
    if not match:
        raise ValueError(f"reveal({key!r}): the key must look like '02.plateau' (lesson number, a dot, a name)")
    lesson, name = match.groups()
    path = answers_file(lesson, root)
    answers = read_answers(path)
    if name not in answers:
        raise KeyError(f"reveal({key!r}): {path} has no heading '## {name}'; it has {sorted(answers)}")
    text = answers[name]
    needed = placeholders(text)
    missing, unused = needed - set(values), set(values) - needed
    if missing or unused:
        raise ValueError(f"reveal({key!r}): the answer in {path} "
                         + (f"needs values for {sorted(missing)}" if missing else "")
                         + ("; " if missing and unused else "")
                         + (f"does not use {sorted(unused)}" if unused else ""))
    return reflow(text.format(**values))


def reflow(text: str, width: int = 88) -> str:
    """Re-wrap each plain paragraph (lists, tables and indented blocks are kept as they are)."""
    paragraphs = text.split("\n\n")
    for i, paragraph in enumerate(paragraphs):
        lines = paragraph.splitlines()
        if lines and not any(line[:1] in ("-", "*", " ", "|", "#") or re.match(r"\d+\. ", line)
                             for line in lines):
            paragraphs[i] = textwrap.fill(" ".join(line.strip() for line in lines), width)
    return "\n\n".join(paragraphs)


def reveal(key: str, **values) -> str:
    """Print (and return) the answer to a "predict first" question of a lesson.

    key: "NN.name", the lesson number and the answer's heading in
    lessons/answers/NN_*.md. values: the numbers of this run that the answer quotes.
    """
    anchor = sys._getframe(1).f_globals.get("__file__") or Path.cwd()     # a notebook has no __file__
    text = answer_text(key, lesson_root(anchor), **values)
    print(f"Answer ({key}):\n{text}\n")
    return text
