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


def _raises_in_the_students_code(*args, **kwargs):
    value = float(len(args))
    return value[0]          # TypeError: 'float' object is not subscriptable


def _transform(solution, change):
    """A wrong answer: the solution's (first) output changed by `change`."""
    def wrong(*args, **kwargs):
        out = solution(*args, **kwargs)
        if isinstance(out, tuple):
            return (change(np.asarray(out[0], dtype=float)),) + tuple(out[1:])
        return change(np.asarray(out, dtype=float))
    return wrong


def _one_element_off(x):
    x = x.copy()
    x.reshape(-1)[x.size // 2] += 1e-3 * (1 + abs(x.reshape(-1)[x.size // 2]))
    return x


def _in_place(solution):
    """A wrong answer: right output, but it writes into its first array argument."""
    def wrong(*args, **kwargs):
        out = solution(*args, **kwargs)
        first = next(a for a in args if isinstance(a, np.ndarray) and a.flags.writeable and a.size)
        first.reshape(-1)[0] += 1.0
        return out
    return wrong


def _generic_mistakes(exercise):
    """{description: (wrong function, words its message must contain)}: the mistakes of
    the issue's list that apply to every exercise."""
    solution = exercise.solution
    case = exercise.cases()[0]
    first = solution(*case.args, **case.kwargs)
    first = np.asarray(first[0] if isinstance(first, tuple) else first, dtype=float)
    mistakes = {
        "returns None": (lambda *a, **k: None, "returned None"),
        "raises NotImplementedError (an untouched stub)":
            (lambda *a, **k: (_ for _ in ()).throw(NotImplementedError("todo")), "not done yet"),
        "raises in the student's own code": (_raises_in_the_students_code, "return value[0]"),
        "zeros": (_transform(solution, np.zeros_like), "not right yet"),
        "the opposite sign": (_transform(solution, np.negative), "opposite sign"),
        "a missing factor of 1.41": (_transform(solution, lambda x: np.sqrt(2) * x), "times 1.41421"),
        "one element off": (_transform(solution, _one_element_off), "but should be"),
        "an extra axis": (_transform(solution, lambda x: x[None]), "shape"),
    }
    if first.ndim >= 2 and first.shape[-1] == first.shape[-2]:
        mistakes["the last two axes transposed"] = (
            _transform(solution, lambda x: np.swapaxes(x, -1, -2)), "axes in the order")
    if any(isinstance(a, np.ndarray) and a.flags.writeable and a.size for a in case.args):
        mistakes["changes its input in place"] = (_in_place(solution), "in place")
    return mistakes


@pytest.mark.parametrize("name", NAMES)
def test_check_refuses_generic_mistakes_and_names_them(name):
    exercise = EXERCISES[name]
    for description, (wrong, words) in _generic_mistakes(exercise).items():
        result = exercise.run(wrong)
        assert not result.passed, f"{name}: the check accepted a function that {description}"
        assert words in str(result), f"{name}, {description}: {words!r} not in\n{result}"


def test_a_raising_function_shows_the_students_lines_not_the_checkers():
    text = str(EXERCISES["softmax_backward_tl"].run(_raises_in_the_students_code))
    assert "raised TypeError: 'float' object is not subscriptable" in text
    assert f'File "{__file__}"' in text and "in _raises_in_the_students_code" in text
    assert "return value[0]" in text
    assert "core.py" not in text


@pytest.mark.parametrize("name", NAMES)
def test_check_refuses_each_typical_mistake_with_a_message_that_names_it(name):
    exercise = EXERCISES[name]
    assert len(exercise.wrong_answers) >= 2, f"{name} lists fewer than 2 typical mistakes"
    for mistake in exercise.wrong_answers:
        result = exercise.run(mistake.function)
        assert not result.passed, f"{name}: the check accepted the mistake {mistake.description!r}"
        assert mistake.words in str(result), \
            f"{name}: the message for {mistake.description!r} does not say {mistake.words!r}:\n{result}"


@pytest.mark.parametrize("name", NAMES)
def test_cases_vary_the_sizes_so_a_hard_coded_size_fails(name):
    sizes = [case.sizes for case in EXERCISES[name].cases() if case.sizes]
    if name == "prefix_matching_score":      # lesson 06 (issue 15) varies L and the copies instead
        return
    assert sizes, f"{name}: no case says its sizes"
    varied = {key for key in sizes[0] if len({s.get(key) for s in sizes}) > 1}
    assert varied, f"{name}: every case has the same sizes {sizes[0]}"


@pytest.mark.parametrize("name", ["induction_strength", "label_previous_token_score",
                                  "previous_token_head_score", "match_target"])
def test_exercises_about_context_pairs_have_a_case_with_three(name):
    assert any(case.sizes.get("C") == 3 for case in EXERCISES[name].cases())


def test_the_issue_example_hard_coded_label_positions_is_refused_and_named():
    def hard_coded(cache, layer):
        return cache["pattern", layer][:, :, [1, 3], [0, 2]].mean(axis=(0, 2))

    text = str(EXERCISES["label_previous_token_score"].run(hard_coded))
    assert "not right yet" in text and "C=3 pairs" in text
    assert "only work for C = 2" in text


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
    # one number: only a simple factor is named (any number is some multiple of another)
    assert "times 1.41421" in "\n".join(compare_outputs(np.sqrt(2) * 0.35, 0.35, ("x",)))
    assert "times" not in "\n".join(compare_outputs(0.345, 0.351, ("x",)))
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


LESSON_05 = '''"""Another lesson."""
# %%
from tinyinduction.exercises import check
# %%
# EXERCISE: match_target
from tinyinduction.subcircuits import match_target  # SOLUTION
check("match_target", match_target)
# %%
# EXERCISE: shift_middle_backward
from tinyinduction.subcircuits import shift_middle_backward  # SOLUTION
check("shift_middle_backward", shift_middle_backward)
'''


def _lessons(tmp_path):
    lessons = tmp_path / "lessons"
    lessons.mkdir()
    (lessons / "04_toy.py").write_text(LESSON_04)
    (lessons / "05_clamps.py").write_text(LESSON_05)
    return lessons


def test_command_line_writes_keeps_student_work_and_lists(tmp_path, capsys):
    lessons = _lessons(tmp_path)
    out = tmp_path / "exercises"
    args = ["04", "--lessons-dir", str(lessons), "--out", str(out)]
    assert main(args) == 0
    written = out / "04_toy.py"
    assert "def closed_form_product(t, depth, s, w0, tau):" in written.read_text()
    assert "python -m tinyinduction.exercises check 04" in written.read_text()
    written.write_text("my work")
    assert main(args) == 2
    captured = capsys.readouterr()
    assert f"kept {written} (your work" in captured.out and "exist and were kept" in captured.err
    assert written.read_text() == "my work"
    # --all writes the missing files and keeps the existing ones
    assert main(["--all", "--lessons-dir", str(lessons), "--out", str(out)]) == 0
    captured = capsys.readouterr().out
    assert f"kept {written}" in captured and f"wrote {out / '05_clamps.py'}" in captured
    assert written.read_text() == "my work" and "def match_target" in (out / "05_clamps.py").read_text()
    assert main(args + ["--force"]) == 0
    assert (out / "04_toy.py.1.bak").read_text() == "my work"
    assert main(["--list"]) == 0
    assert "lesson 04: product_gradient, closed_form_product" in capsys.readouterr().out
    assert main(["--solution", "closed_form_product"]) == 0
    assert "def closed_form_product" in capsys.readouterr().out
    assert main(["07", "--lessons-dir", str(lessons), "--out", str(out)]) == 2
    assert "lesson '07' has no exercises" in capsys.readouterr().err


@pytest.mark.parametrize("argv, words", [
    (["01", "--solution", "product_gradient"], "drop lesson numbers 01"),
    (["--all", "--solution", "product_gradient"], "drop --all"),
    (["--list", "--solution", "product_gradient"], "drop --list"),
    (["--all", "01"], "lesson numbers or --all, not both"),
    (["--list", "01"], "--list lists every lesson's exercises and takes nothing else; drop lesson numbers 01"),
    (["--list", "--all"], "takes nothing else; drop --all"),
])
def test_command_line_refuses_options_it_would_ignore(argv, words, capsys):
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert words in captured.err and len(captured.err.strip().splitlines()) == 1 and not captured.out


# ---------------------------------------------------------------- checking a whole exercise file

RIGHT_04 = '''
import numpy as np


def product_gradient(w, s):
    w = np.asarray(w, dtype=float)
    others = np.array([np.prod(np.delete(w, i)) for i in range(w.size)])
    return -(s - np.prod(w)) * others


def closed_form_product(t, depth, s, w0, tau):
    t = np.asarray(t, dtype=float)
    if depth == 1:
        return s + (w0 - s) * np.exp(-t / tau)
    u0 = w0 ** 2
    return s * u0 / (u0 + (s - u0) * np.exp(-2 * s * t / tau))
'''


def _check(tmp_path, capsys, text, *extra):
    path = tmp_path / "student_04.py"
    path.write_text(text)
    status = main(["check", "04", str(path), *extra])
    return status, capsys.readouterr()


def test_check_command_on_a_correct_file(tmp_path, capsys):
    # a cell that trains would take minutes: `check` must not run it
    text = RIGHT_04 + "\nraise RuntimeError('the cells ran')\n"
    status, out = _check(tmp_path, capsys, text)
    assert status == 0, out.out + out.err
    assert "2 of 2 exercises correct" in out.out
    assert [line.split() for line in out.out.splitlines()[-2:]] == [["product_gradient", "correct"],
                                                                     ["closed_form_product", "correct"]]


def test_check_command_on_a_wrong_file_and_one_that_raises(tmp_path, capsys):
    text = RIGHT_04.replace("-(s - np.prod(w)) * others", "(s - np.prod(w)) * others").replace(
        "    u0 = w0 ** 2\n", "    u0 = w0[0] ** 2\n")
    status, out = _check(tmp_path, capsys, text)
    assert status == 1
    assert "0 of 2 exercises correct" in out.out
    assert "it is the right answer with the opposite sign" in out.out
    line = 1 + text.splitlines().index("    u0 = w0[0] ** 2")
    assert f'File "{tmp_path / "student_04.py"}", line {line}, in closed_form_product' in out.out
    assert "u0 = w0[0] ** 2" in out.out and "core.py" not in out.out
    assert out.out.splitlines()[-2].split()[1:] == ["not", "right", "yet"]
    status, out = _check(tmp_path, capsys, text, "--brief")
    assert status == 1 and "opposite sign" not in out.out and "not right yet" in out.out


def test_check_command_on_an_unmodified_exercise_file_says_not_done_yet(tmp_path, capsys):
    import time
    text = exercise_version(LESSON_04, "04")
    started = time.perf_counter()
    status, out = _check(tmp_path, capsys, text)
    assert status == 1
    assert out.out.count("not done yet") >= 2
    assert [line.split(maxsplit=1) for line in out.out.splitlines()[-2:]] == [
        ["product_gradient", "not done yet"], ["closed_form_product", "not done yet"]]
    assert time.perf_counter() - started < 30


def test_check_command_on_files_that_do_not_load_or_lack_a_function(tmp_path, capsys):
    status, out = _check(tmp_path, capsys, RIGHT_04 + "\ndef broken(:\n")
    assert status == 1 and "syntax error at line" in out.out
    assert "not checked (the file does not load)" in out.out
    status, out = _check(tmp_path, capsys, RIGHT_04 + "\nimport no_such_module_here\n")
    assert status == 1 and "No module named 'no_such_module_here'" in out.out
    status, out = _check(tmp_path, capsys, RIGHT_04.replace("def closed_form_product", "def closed_form"))
    assert status == 1 and "closed_form_product  missing" in out.out
    assert main(["check", "04", str(tmp_path / "nothing.py")]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["check", "07", str(tmp_path / "student_04.py")]) == 2
    assert "lesson '07' has no exercises" in capsys.readouterr().err


def test_check_command_finds_the_default_file(tmp_path, capsys):
    lessons = _lessons(tmp_path)
    assert main(["check", "05", "--lessons-dir", str(lessons)]) == 2
    assert "write it with `python -m tinyinduction.exercises 05`" in capsys.readouterr().err
    assert main(["05", "--lessons-dir", str(lessons)]) == 0
    assert main(["check", "05", "--lessons-dir", str(lessons), "--brief"]) == 1
    assert "match_target           not done yet" in capsys.readouterr().out


def test_lessons_directory_is_found_from_the_package():
    assert lessons_dir() is not None and lessons_dir().is_dir()


def test_lessons_directory_is_found_from_the_working_directory_after_pip_install_dot(tmp_path, monkeypatch):
    from tinyinduction import paths
    monkeypatch.setattr(paths, "repository_root", lambda: None)      # the package in site-packages
    (tmp_path / "setup.cfg").write_text("")
    (tmp_path / "lessons" / "exercises").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "lessons" / "exercises")
    assert paths.lessons_dir() == tmp_path.resolve() / "lessons"
    assert paths.lesson_root(tmp_path / "lessons" / "01_x.py") == tmp_path.resolve()
    monkeypatch.chdir(tmp_path.parent)
    assert paths.lessons_dir() is None


def test_the_size_hint_needs_a_size_that_separates_two_or_more_failing_cases():
    def cases(rng):
        return [Case(f"n={n}, start {k}", (n, k), np.arange(k, k + n, dtype=float), "maths", sizes={"n": n})
                for n, k in ((2, 0), (2, 5), (3, 0), (3, 7), (4, 1))]

    exercise = Exercise("count_up", "99", solution=lambda n, k: np.arange(k, k + n, dtype=float),
                        make_cases=cases)
    assert "only work for n = 2" in str(exercise.run(lambda n, k: np.array([k, k + 1.0])))
    one_case_off = str(exercise.run(lambda n, k: np.arange(k, k + n, dtype=float) + (n == 4)))
    assert "not right yet" in one_case_off and "only work for" not in one_case_off
