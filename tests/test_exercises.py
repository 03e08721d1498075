"""Exercises: every check passes on the package's solution and fails on empty or wrong
functions with a message that says what is wrong; exercise versions of the lessons."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tinyinduction import ops, tl_layout
from tinyinduction.exercises import (Case, Exercise, ExerciseFailed, check, compare_outputs,
                                     load_all, numerical_gradient, show_solution)
from tinyinduction.exercises.student import exercise_version, main
from tinyinduction.paths import lessons_dir

EXERCISES = load_all()
NAMES = sorted(EXERCISES)


def test_every_lesson_module_registers_exercises():
    assert {ex.lesson for ex in EXERCISES.values()} >= {"01", "02", "04"}
    for ex in EXERCISES.values():
        assert ex.docstring.strip(), f"{ex.name} has no task docstring"
        assert ex.cases(), f"{ex.name} has no cases"


@pytest.mark.parametrize("name", NAMES)
def test_check_passes_on_the_package_solution(name):
    result = EXERCISES[name].run(EXERCISES[name].solution)
    assert result.passed, str(result)
    assert "correct on all" in str(result)


def _first_output(exercise):
    case = exercise.cases()[0]
    return case, exercise.solution(*case.args, **case.kwargs)


def _generic_wrong_answers(exercise):
    """Wrong functions built from the solution: zeros, scaled, one element off, wrong shape."""
    solution = exercise.solution

    def transform(change):
        def wrong(*args, **kwargs):
            out = solution(*args, **kwargs)
            if isinstance(out, tuple):
                return (change(np.asarray(out[0], dtype=float)),) + tuple(out[1:])
            return change(np.asarray(out, dtype=float))
        return wrong

    def one_element_off(x):
        x = x.copy()
        x.reshape(-1)[x.size // 2] += 1e-3 * (1 + abs(x.reshape(-1)[x.size // 2]))
        return x

    return {
        "returns None": lambda *a, **k: None,
        "raises NotImplementedError": lambda *a, **k: (_ for _ in ()).throw(NotImplementedError("todo")),
        "zeros": transform(np.zeros_like),
        "scaled by 1.1": transform(lambda x: 1.1 * x),
        "one element off": transform(one_element_off),
        "an extra axis": transform(lambda x: x[None]),
    }


@pytest.mark.parametrize("name", NAMES)
def test_check_fails_on_empty_and_generic_wrong_functions(name):
    exercise = EXERCISES[name]
    for description, wrong in _generic_wrong_answers(exercise).items():
        result = exercise.run(wrong)
        assert not result.passed, f"{name}: the check accepted a function that {description}"
        text = str(result)
        assert "not right yet" in text
        if description == "returns None":
            assert "returned None" in text
        if description == "raises NotImplementedError":
            assert "raised NotImplementedError: todo" in text
        if description == "an extra axis":
            assert "shape" in text


@pytest.mark.parametrize("name", NAMES)
def test_check_fails_on_each_typical_mistake(name):
    exercise = EXERCISES[name]
    assert exercise.wrong_answers, f"{name} lists no typical mistakes"
    for description, wrong in exercise.wrong_answers:
        result = exercise.run(wrong)
        assert not result.passed, f"{name}: the check accepted the mistake {description!r}"


def test_failure_message_names_element_right_value_and_distance():
    exercise = EXERCISES["softmax_backward_tl"]
    result = exercise.run(lambda dp, p: p * dp)     # forgets the row term
    text = str(result)
    assert "dscores element [" in text and "(batch " in text and "key_pos" in text
    assert "but should be" in text and "off by" in text and "finite differences" in text
    assert "show_solution('softmax_backward_tl')" in text


def test_mistake_hints_sign_factor_and_axis_order():
    expected = np.arange(1.0, 7.0).reshape(2, 3)
    axes = (("row", "col"),)
    assert "opposite sign" in "\n".join(compare_outputs(-expected, expected, ("x",), axes))
    assert "times 2" in "\n".join(compare_outputs(2 * expected, expected, ("x",), axes))
    lines = compare_outputs(expected.T, expected, ("x",), axes)
    assert "shape (3, 2) but should have shape (2, 3) [row, col]" in lines[0]
    assert "[col, row]" in lines[1]
    assert compare_outputs(expected + 1e-12, expected, ("x",), axes) is None


def test_check_catches_a_function_that_writes_into_its_input():
    exercise = EXERCISES["softmax_backward_tl"]

    def in_place(dpattern, pattern):
        right = tl_layout.softmax_backward(dpattern, pattern)
        dpattern[...] = 0.0
        return right

    text = str(exercise.run(in_place))
    assert "changed its input argument 1 in place" in text


def test_check_prints_and_raises_and_show_solution_prints_source(capsys):
    assert check("product_gradient", EXERCISES["product_gradient"].solution)
    assert "correct on all" in capsys.readouterr().out
    with pytest.raises(ExerciseFailed, match="product_gradient is not right yet"):
        check("product_gradient", lambda w, s: np.zeros_like(w))
    assert "element [0] (factor 0)" in capsys.readouterr().out
    text = show_solution("product_gradient")
    assert "def product_gradient" in text and "tinyinduction.toy" in text
    with pytest.raises(KeyError, match="did you mean"):
        check("product_gradiant", lambda w, s: w)


def test_numerical_gradient_of_a_known_function():
    x = np.array([[0.5, -1.0], [2.0, np.inf]])
    grad = numerical_gradient(lambda v: float(np.sum(np.where(np.isfinite(v), v ** 3, 0.0))), x)
    np.testing.assert_allclose(grad[np.isfinite(x)], 3 * x[np.isfinite(x)] ** 2, rtol=1e-8)
    assert grad[1, 1] == 0.0     # a constant (masked) entry has no gradient


def test_a_custom_exercise_with_properties():
    def rows_sum_to_one(out, case):
        return None if np.allclose(np.sum(out, axis=-1), 1) else "rows must sum to 1"

    exercise = Exercise("uniform_rows", "99", solution=lambda n: np.full((n, n), 1.0 / n),
                        make_cases=lambda rng: [Case("n=3", (3,), np.full((3, 3), 1 / 3), "maths", atol=1.0)],
                        properties=(rows_sum_to_one,))
    assert exercise.run(exercise.solution)
    assert "rows must sum to 1" in str(exercise.run(lambda n: np.full((n, n), 0.5)))
    with pytest.raises(ValueError, match="two digits"):
        Exercise("x", "1", solution=len, make_cases=lambda rng: [])


# ---------------------------------------------------------------- the TL layout = the package's ops


@given(n_batch=st.integers(1, 3), n_positions=st.integers(1, 5), n_heads=st.integers(1, 3),
       d_head=st.integers(1, 4), seed=st.integers(0, 1000))
def test_tl_layout_gives_the_numbers_of_the_feature_major_ops(n_batch, n_positions, n_heads, d_head, seed):
    rng = np.random.default_rng(seed)
    q, k = rng.standard_normal((2, n_batch, n_positions, n_heads, d_head))
    mask = np.tril(np.ones((n_positions, n_positions), bool))
    scale = 1 / np.sqrt(d_head)
    to_internal, pattern_to_internal = (3, 1, 2, 0), (2, 3, 1, 0)
    scores_ops, saved = ops.attention_scores_forward(q.transpose(to_internal), k.transpose(to_internal),
                                                     scale, mask)
    scores = tl_layout.attention_scores(q, k, scale, mask)
    np.testing.assert_allclose(scores.transpose(pattern_to_internal), scores_ops, rtol=1e-12)
    pattern_ops, softmax_saved = ops.softmax_forward(scores_ops)
    pattern = tl_layout.softmax(scores)
    np.testing.assert_allclose(pattern.transpose(pattern_to_internal), pattern_ops, rtol=1e-12)
    dpattern = rng.standard_normal(pattern.shape)
    dscores = tl_layout.softmax_backward(dpattern, pattern)
    dscores_ops = ops.softmax_backward(dpattern.transpose(pattern_to_internal), softmax_saved)
    np.testing.assert_allclose(dscores.transpose(pattern_to_internal), dscores_ops, rtol=1e-10, atol=1e-14)
    dq, dk = tl_layout.attention_scores_backward(dscores, q, k, scale, mask)
    dq_ops, dk_ops = ops.attention_scores_backward(dscores_ops, saved)
    np.testing.assert_allclose(dq.transpose(to_internal), dq_ops, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(dk.transpose(to_internal), dk_ops, rtol=1e-10, atol=1e-14)


# ---------------------------------------------------------------- exercise versions of the lessons


LESSON_04 = '''"""A lesson."""
# %%
from tinyinduction.exercises import check
from tinyinduction.paths import figures_dir
FIGURES = figures_dir()
# %%
# EXERCISE: product_gradient
from tinyinduction.toy import product_gradient  # SOLUTION
check("product_gradient", product_gradient)
# %%
# EXERCISE: closed_form_product
from tinyinduction.toy import closed_form_product  # SOLUTION
check("closed_form_product", closed_form_product)
'''


def test_exercise_version_replaces_solution_lines_by_a_stub(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYINDUCTION_FIGURES", str(tmp_path))
    text = exercise_version(LESSON_04, "04")
    assert "# SOLUTION" not in text and "from tinyinduction.toy import" not in text
    assert "def product_gradient(w, s):" in text and "raise NotImplementedError" in text
    assert 'figures_dir("exercises")' in text
    compile(text, "exercise_version", "exec")
    namespace = {}
    with pytest.raises(ExerciseFailed):
        exec(compile(text, "exercise_version", "exec"), namespace)
    with pytest.raises(ValueError, match="no line ending in '# SOLUTION'"):
        exercise_version(LESSON_04.replace("product_gradient  # SOLUTION", "product_gradient"), "04")
    with pytest.raises(ValueError, match=r"\['closed_form_product'\] are declared but have no"):
        exercise_version(LESSON_04.split("# %%\n# EXERCISE: closed")[0], "04")
    with pytest.raises(ValueError, match="not declared for lesson 04"):
        exercise_version(LESSON_04.replace("EXERCISE: product_gradient",
                                                          "EXERCISE: product_gradients"), "04")
    with pytest.raises(ValueError, match="must not be indented"):
        exercise_version(LESSON_04.replace("from tinyinduction.toy", "    from tinyinduction.toy"), "04")


def test_command_line_writes_keeps_student_work_and_lists(tmp_path, capsys):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    (lessons / "04_toy.py").write_text(LESSON_04)
    out = tmp_path / "exercises"
    args = ["04", "--lessons-dir", str(lessons), "--out", str(out)]
    assert main(args) == 0
    written = out / "04_toy.py"
    assert "def closed_form_product(t, depth, s, w0, tau):" in written.read_text()
    written.write_text("my work")
    assert main(args) == 2
    assert "exists (your work?); it is kept" in capsys.readouterr().err
    assert written.read_text() == "my work"
    assert main(args + ["--force"]) == 0
    assert (out / "04_toy.py.1.bak").read_text() == "my work"
    assert main(["--list"]) == 0
    assert "lesson 04: product_gradient, closed_form_product" in capsys.readouterr().out
    assert main(["--solution", "closed_form_product"]) == 0
    assert "def closed_form_product" in capsys.readouterr().out
    assert main(["07", "--lessons-dir", str(lessons), "--out", str(out)]) == 2
    assert "lesson '07' has no exercises" in capsys.readouterr().err


def test_lessons_directory_is_found_from_the_package():
    assert lessons_dir() is not None and lessons_dir().is_dir()
