"""Every lesson runs end to end in its fastest setting (TINYINDUCTION_QUICK=1), from
another working directory, writing figures only where it is told; every exercise
version stops at its first exercise with a check that says what is wrong.

Each lesson must honour TINYINDUCTION_QUICK so that this file stays fast.
"""
import hashlib
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tinyinduction.exercises import exercises_of
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
            "B_evolves: learning time with 10 classes"],
           ["05_subcircuits.png", "05_data.png"]),
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
    for text in texts:
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
