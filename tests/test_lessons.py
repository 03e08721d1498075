"""Every lesson runs end to end in its fastest setting (TINYINDUCTION_QUICK=1), from
another working directory, writing figures only where it is told, and into its own
checkout when the package is installed elsewhere (pip install .); every exercise version
stops at its first exercise with a check that says what is wrong; every lesson keeps the
course's format (a markdown header, answers revealed only when asked, notebooks with
markdown cells).

Each lesson must honour TINYINDUCTION_QUICK so that this file stays fast.
"""
import ast
import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tinyinduction.exercises import exercises_of
from tinyinduction.exercises.reveal import answers_file, placeholders, read_answers
from tinyinduction.exercises.student import exercise_version
from tinyinduction.paths import figures_dir, lessons_dir

LESSONS = sorted(lessons_dir().glob("[0-9][0-9]_*.py"))

# what the lessons of this file's authors must print and draw (others: must run)
EXPECTED = {
    "01": (["previous_token_target: correct", "softmax_backward_tl: correct",
            "attention_scores_backward_tl: correct", "largest difference from the package's",
            "relative error: median"],
           ["01_cache_patterns.png", "01_gradient_check.png"]),
    "02": (["induction_strength: correct", "plateau at 0.7", "loss below 0.4 ln 2 at step",
            "probability on the two context labels"],
           ["02_circuit.png", "02_phase_change.png", "02_patterns_before_after.png"]),
    "03": (["previous_token_head_score: correct", "composition_score: correct",
            "accuracy with every induction head ablated", "with layer-1 values kept"],
           ["03_heads_over_training.png", "03_ablations.png", "03_composition.png"]),
    "04": (["product_gradient: correct", "closed_form_product: correct", "D=5: transition",
            "fitting a generated D=3 curve"],
           ["toy_closed_vs_sim.png", "toy_depth.png", "toy_vector_clamps.png",
            "toy_plateau_scaling.png", "toy_fit_generated.png"]),
    "05": (["match_target: correct", "shift_middle_backward: correct", "learning time",
            "B_evolves: learning times (seeds 5) with 10 classes", "Answer (05.data)"],
           ["05_subcircuits.png", "05_data.png"]),
    "06": (["prefix_matching_score: correct", "characters per token on the held-out files", "a line of code",
            "copying is right", "Answer (06.copying)", "Answer (06.completion)", "paired", "Answer (06.icl)"],
           ["06_prefix_matching.png", "06_attention_on_code.png", "06_icl_before_after.png"]),
}


def _run(script: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, TINYINDUCTION_QUICK="1", MPLBACKEND="Agg",
               TINYINDUCTION_FIGURES=str(tmp_path / "figures"), TINYINDUCTION_RUNS=str(tmp_path / "runs"),
               TINYINDUCTION_HISTORY=str(tmp_path / "no_such_run" / "history.json"))
    elsewhere = tmp_path / "elsewhere"          # not the repository: paths must not depend on it
    elsewhere.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, str(script)], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=600)


def _committed_figures():
    """Content hashes of the repository's figures (hashes, not times: other processes may
    legitimately redraw a figure with the same content meanwhile)."""
    return {path.name: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in figures_dir().glob("*.png")}


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.name)
def test_lesson_runs_end_to_end_in_its_fastest_setting(lesson, tmp_path):
    before = _committed_figures()
    result = _run(lesson, tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert _committed_figures() == before, "a lesson wrote over the committed figures"
    assert not (tmp_path / "elsewhere" / "figures").exists(), "figures went to the working directory"
    texts, figures = EXPECTED.get(lesson.name[:2], ([], []))
    for text in texts + [f"Answer ({lesson.name[:2]}."]:
        assert text in result.stdout, f"{lesson.name} did not print {text!r}"
    for name in figures:
        assert (tmp_path / "figures" / name).stat().st_size > 10_000, name
    if lesson.name[:2] == "01":   # the TL-layout backward equals the package's to rounding
        differences = re.findall(r"(?:scores|d rot_q|d rot_k) ([0-9.e+-]+)", result.stdout)
        assert len(differences) >= 8 and max(map(float, differences)) < 1e-12, differences
    if lesson.name[:2] == "04":   # no network run: the stand-in gets its own name
        assert not (tmp_path / "figures" / "toy_fit.png").exists()


@pytest.mark.parametrize("lesson", [p for p in LESSONS if exercises_of(p.name[:2])],
                         ids=lambda p: p.name)
def test_exercise_version_stops_at_its_first_exercise(lesson, tmp_path):
    first = exercises_of(lesson.name[:2])[0].name
    student = tmp_path / lesson.name
    student.write_text(exercise_version(lesson.read_text(), lesson.name[:2]))
    result = _run(student, tmp_path)
    assert result.returncode != 0
    assert f"{first}: not done yet (your function raised NotImplementedError" in result.stdout
    assert "ExerciseFailed" in result.stderr
    assert not (tmp_path / "figures").exists() or not any((tmp_path / "figures").glob("*.png")), \
        "the exercise version wrote figures outside figures/exercises/"


# ---------------------------------------------------------------- either install, any directory


def test_a_lesson_writes_into_its_own_checkout_when_the_package_is_installed_elsewhere(tmp_path):
    """pip install . puts the package in site-packages: the lesson must still find its
    checkout (figures/, runs/demo) from its own file, whatever the working directory."""
    site = tmp_path / "site-packages"                     # a copy of the package, outside any checkout
    shutil.copytree(Path(__file__).resolve().parent.parent / "tinyinduction", site / "tinyinduction",
                    ignore=shutil.ignore_patterns("__pycache__"))
    checkout = tmp_path / "checkout"
    (checkout / "lessons" / "answers").mkdir(parents=True)
    (checkout / "setup.cfg").write_text("[metadata]\nname = tinyinduction\n")
    lesson = next(p for p in LESSONS if p.name.startswith("04_"))
    shutil.copy(lesson, checkout / "lessons" / lesson.name)
    shutil.copy(answers_file("04", lessons_dir().parent), checkout / "lessons" / "answers")
    demo = checkout / "runs" / "demo"                     # a network run for the toy fit to find
    demo.mkdir(parents=True)
    steps = np.arange(0.0, 12000.0, 100.0)
    loss = 0.05 + (math.log(2) - 0.05) / (1 + np.exp((steps - 6000.0) / 500.0)) + 0.9 * np.exp(-steps / 300.0)
    demo.joinpath("history.json").write_text(json.dumps({"step": steps.tolist(), "eval/train/loss": loss.tolist()}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TINYINDUCTION_")}
    env.update(PYTHONPATH=str(site), TINYINDUCTION_QUICK="1", MPLBACKEND="Agg")
    result = subprocess.run([sys.executable, str(checkout / "lessons" / lesson.name)], cwd=elsewhere, env=env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert f"network run {demo / 'history.json'}" in result.stdout
    assert (checkout / "figures" / "toy_fit.png").is_file() and (checkout / "figures" / "toy_depth.png").is_file()
    assert not (elsewhere / "figures").exists() and not (elsewhere / "runs").exists()


# ---------------------------------------------------------------- the course's format


def _reveal_calls(source):
    """[(line, key, keyword names)] of every reveal(...) call in a lesson."""
    calls = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "reveal":
            keys = node.args[0]
            if isinstance(keys, ast.IfExp):                 # reveal("a" if ... else "b", ...)
                keys = [keys.body.value, keys.orelse.value]
            else:
                keys = [keys.value]
            assert all(k.arg for k in node.keywords), f"line {node.lineno}: no **values in reveal()"
            for key in keys:
                calls.append((node.lineno, key, {k.arg for k in node.keywords}))
    return calls


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.name)
def test_lesson_format_header_paths_and_no_times(lesson):
    text = lesson.read_text()
    number = lesson.name[:2]
    assert text.startswith(f"# %% [markdown]\n# # Lesson {number}: "), "a lesson starts with its markdown header"
    header = text.split("\n# %%\n")[0]
    for words in ("**Learning objectives.**", "lessons/README.md"):
        assert words in header, f"{lesson.name}: the header does not say {words!r}"
    if exercises_of(number):
        assert f"python -m tinyinduction.exercises check {number}" in header
    assert "ROOT = lesson_root()" in text and "figures_dir(root=ROOT)" in text
    assert "figures_dir()" not in text and "runs_dir()" not in text, "paths come from the lesson's own file"
    assert not re.search(r"\b(seconds|minutes)\b", text), "run times live in the course guide only"
    assert "**Answer" not in text, "answers are revealed with reveal(...), not printed in a cell"


@pytest.mark.parametrize("lesson", LESSONS, ids=lambda p: p.name)
def test_every_prediction_is_revealed_when_asked(lesson):
    text = lesson.read_text()
    number = lesson.name[:2]
    answers = read_answers(answers_file(number, lessons_dir().parent))
    calls = _reveal_calls(text)
    used = set()
    for line, key, names in calls:
        assert key.startswith(f"{number}."), f"line {line}: reveal({key!r}) in lesson {number}"
        name = key.split(".", 1)[1]
        assert name in answers, f"line {line}: no answer '## {name}' in lessons/answers/{number}_*.md"
        assert names == placeholders(answers[name]), \
            f"line {line}: reveal({key!r}) gives {sorted(names)}, the answer needs {sorted(placeholders(answers[name]))}"
        used.add(name)
    assert used == set(answers), f"answers no lesson reveals: {sorted(set(answers) - used)}"
    # every "Predict first" question is answered by a reveal before the next question
    lines = text.splitlines()
    questions = [i for i, line in enumerate(lines) if line.strip() == "# ### Predict first"]
    assert questions, f"{lesson.name} asks no question"
    reveal_lines = sorted(line - 1 for line, _, _ in calls)
    for i, start in enumerate(questions):
        end = questions[i + 1] if i + 1 < len(questions) else len(lines)
        assert any(start < r < end for r in reveal_lines), f"{lesson.name} line {start + 1}: no reveal answers it"
        # the answer is not in the lesson: no cell between the question and the reveal says it
        between = "\n".join(lines[start:min([r for r in reveal_lines if r > start])])
        assert "Answer" not in between


def test_reveal_fills_in_the_run_and_refuses_missing_or_unused_values(tmp_path):
    from tinyinduction.exercises.reveal import answer_text
    (tmp_path / "setup.cfg").write_text("")
    (tmp_path / "lessons" / "answers").mkdir(parents=True)
    (tmp_path / "lessons" / "answers" / "09_x.md").write_text(
        "# title\n\n## level\nThe plateau sat at {level:.3f}, a\nlittle above ln 2.\n\n## other\nno numbers\n")
    assert answer_text("09.level", tmp_path, level=0.71828) == "The plateau sat at 0.718, a little above ln 2."
    with pytest.raises(ValueError, match=r"needs values for \['level'\]"):
        answer_text("09.level", tmp_path)
    with pytest.raises(ValueError, match=r"does not use \['extra'\]"):
        answer_text("09.other", tmp_path, extra=1)
    with pytest.raises(KeyError, match="no heading '## nothing'"):
        answer_text("09.nothing", tmp_path)
    with pytest.raises(ValueError, match="must look like"):
        answer_text("level", tmp_path)


def test_a_lesson_converts_to_a_notebook_with_markdown_cells():
    jupytext = pytest.importorskip("jupytext")        # the [notebooks] extra
    lesson = next(p for p in LESSONS if p.name.startswith("02_"))
    notebook = jupytext.read(lesson)
    kinds = [cell.cell_type for cell in notebook.cells]
    assert kinds[0] == "markdown" and "Learning objectives" in notebook.cells[0].source
    assert kinds.count("markdown") == lesson.read_text().count("# %% [markdown]")
    for cell in notebook.cells:
        if cell.cell_type == "code":     # no prose left in a code cell
            assert not cell.source.lstrip().startswith(('"""', "# ##", "# **")), cell.source[:80]
        else:
            assert not re.search(r"^# (\*\*|- |[a-z])", cell.source, re.M), "comment marks left in markdown"


# ---------------------------------------------------------------- the course guide

GUIDE = lessons_dir() / "README.md"


def test_the_guide_lists_every_lesson_in_order_with_times_papers_and_prerequisites():
    text = GUIDE.read_text()
    order = [text.index(f"]({lesson.name})") for lesson in LESSONS]
    assert order == sorted(order), "the guide's table lists the lessons in their order"
    for lesson in LESSONS:
        number = lesson.name[:2]
        section = text.split(f"### Lesson {number}:")[1].split("\n### ")[0].split("\n## ")[0]
        assert "Papers:" in section and "](https://" in section, f"lesson {number}: no paper links"
        for exercise in exercises_of(number):
            assert f"`{exercise.name}`" in section, f"lesson {number}: {exercise.name} not named"
        row = next(line for line in text.splitlines() if line.startswith(f"| [{number}:"))
        assert " min |" in row, f"lesson {number}: no working time in {row}"
    for paper in ("arxiv.org/abs/2209.11895", "arxiv.org/abs/2404.07129", "arxiv.org/abs/1312.6120",
                  "transformer-circuits.pub/2021/framework"):
        assert paper in text
    times = text.split("<!-- run-times: written by lessons/time_lessons.py -->")[1].split("<!-- /run-times -->")[0]
    for lesson in LESSONS:
        assert f"| `{lesson.name}` |" in times, f"no measured run time for {lesson.name}"
    assert "load average" in times and "python lessons/time_lessons.py" in text


def test_the_notebooks_extra_installs_jupytext():
    setup = (lessons_dir().parent / "setup.cfg").read_text()
    assert re.search(r"^notebooks =\n    jupytext", setup, re.M)
