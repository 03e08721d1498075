"""The toy product model: closed forms vs simulation, GD, clamping, vector model, fit, CLI."""
import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyinduction import toy
from tinyinduction.phases import describe_phase_change

s_values = st.floats(0.3, 3.0)
tau_values = st.floats(0.2, 5.0)
w0_fractions = st.floats(0.02, 0.5)  # w0 as a fraction of s^(1/D): below the transition level 0.6 s


# ------------------------------------------------------------------ closed forms


@pytest.mark.parametrize("depth", [1, 2, 3])
@given(s=s_values, frac=w0_fractions, tau=tau_values)
@settings(max_examples=8)
def test_closed_form_matches_solve_ivp(depth, s, frac, tau):
    w0 = frac * s ** (1.0 / depth)
    t_end = 2.0 * toy.transition_time(depth, s, w0, tau)
    t = np.linspace(0.0, t_end, 60)
    u_closed = toy.closed_form_product(t, depth, s, w0, tau)
    u_sim = toy.simulate_flow(t, [w0] * depth, s, tau).prod(axis=1)
    rel = np.abs(u_closed - u_sim) / np.abs(u_sim)
    assert rel.max() < 1e-6
    assert u_sim[-1] > 0.6 * s  # the curve really went through the transition


@given(s=s_values, frac=st.floats(0.05, 0.9))
def test_depth3_antiderivative_derivative(s, frac):
    c = s ** (1.0 / 3.0)
    w = frac * c
    h = 1e-6 * w
    dG = (toy.depth3_antiderivative(w + h, s) - toy.depth3_antiderivative(w - h, s)) / (2 * h)
    # t = (tau/s)(G(w) - G(w0)) and dt/dw = tau / (w^2 (s - w^3))
    assert dG / s == pytest.approx(1.0 / (w ** 2 * (s - w ** 3)), rel=1e-6)


@given(s=s_values, frac=w0_fractions, tau=tau_values)
def test_time_and_factor_are_inverse(s, frac, tau):
    w0 = frac * s ** (1 / 3)
    # (far past the drop w rounds to c and t(w) loses its information: stay before that)
    T = toy.transition_time(3, s, w0, tau)
    t = np.array([0.0, 0.3 * T, T, T + 0.5 * tau / s ** (4 / 3)])
    w = toy.closed_form_factor(t, 3, s, w0, tau)
    np.testing.assert_allclose(toy.closed_form_time(w, 3, s, w0, tau), t, rtol=1e-7, atol=1e-9)


def test_saxe_formula_and_plateau_asymptotics():
    s, tau, u0 = 2.0, 3.0, 1e-4
    # Saxe: time from u0 to uf is tau/(2s) ln[uf (s-u0) / (u0 (s-uf))]
    uf = 0.1 * s
    expected = tau / (2 * s) * math.log(uf * (s - u0) / (u0 * (s - uf)))
    assert toy.plateau_length(2, s, math.sqrt(u0), tau) == pytest.approx(expected, rel=1e-12)
    # D = 3: plateau ~ tau / (s w0) for small w0
    for w0 in (1e-3, 1e-4):
        assert toy.plateau_length(3, s, w0, tau) * s * w0 / tau == pytest.approx(1.0, rel=0.01)
    # D = 1: exponential, reaching 10 % of s from ~0 takes tau ln(1/0.9)
    assert toy.plateau_length(1, s, 1e-9, tau) == pytest.approx(tau * math.log(1 / 0.9), rel=1e-6)


def test_already_past_fraction_gives_zero_time():
    assert toy.time_to_fraction(1, 1.0, 0.5, 1.0, 0.1) == 0.0


# ------------------------------------------------------------ flow, conservation, GD


@given(seed=st.integers(0, 10_000), depth=st.integers(2, 5))
@settings(max_examples=8)
def test_flow_conserves_squared_differences(seed, depth):
    rng = np.random.default_rng(seed)
    w0 = rng.uniform(0.1, 0.6, size=depth)
    t = np.linspace(0.0, 40.0, 30)
    W = toy.simulate_flow(t, w0, 1.0, 1.0)
    Q = toy.conserved_quantities(W)
    np.testing.assert_allclose(Q, np.broadcast_to(Q[0], Q.shape), atol=1e-8)
    assert abs(W[-1].prod() - W[0].prod()) > 0.1  # the factors did move a lot


def test_conserved_quantities_change_when_flow_is_broken():
    # sanity that the conservation test can fail: clamping a factor breaks it
    t = np.linspace(0.0, 20.0, 10)
    W = toy.simulate_flow(t, [0.3, 0.4, 1.0], 1.0, 1.0, clamped=[2])
    Q = toy.conserved_quantities(W)
    assert abs(Q[-1, 0, 2] - Q[0, 0, 2]) > 0.1


def test_gradient_descent_converges_to_flow_linearly_in_lr():
    w0, s, tau = np.array([0.2, 0.3, 0.35]), 1.0, 2.0
    t_end = toy.simulated_time_to_fraction(w0, s, tau, 0.5)  # mid-drop: errors are largest
    errors = []
    for lr in (0.04, 0.02, 0.01):
        steps = int(round(t_end / (lr * tau)))
        t, W = toy.gradient_descent(w0, s, lr, steps, tau)
        u_flow = toy.simulate_flow(np.array([0.0, t[-1]]), w0, s, tau)[-1].prod()
        errors.append(abs(W[-1].prod() - u_flow))
    assert errors[0] > errors[1] > errors[2]
    for big, small in zip(errors, errors[1:]):
        assert 1.6 < big / small < 2.5  # Euler: error proportional to lr


def test_product_gradient_matches_finite_differences():
    w, s, h = np.array([0.3, -0.7, 1.2, 0.0]), 1.5, 1e-6
    g = toy.product_gradient(w, s)
    for i in range(w.size):
        e = np.zeros_like(w)
        e[i] = h
        fd = (toy.product_loss(w + e, s) - toy.product_loss(w - e, s)) / (2 * h)
        assert g[i] == pytest.approx(fd, rel=1e-6, abs=1e-10)


# ------------------------------------------------------------------------- clamping


@given(s=s_values, frac=st.floats(0.01, 0.2), tau=tau_values)
@settings(max_examples=8)
def test_clamping_shortens_plateau_strictly(s, frac, tau):
    w0 = frac * s ** (1 / 3)
    summary = toy.clamping_summary(s, w0, tau)
    for key in ("plateau_length", "transition_time"):
        vals = summary[key]
        for label in ("none", "one_clamp", "two_clamps"):
            assert vals[label]["simulation"] == pytest.approx(vals[label]["closed_form"], rel=1e-6)
        closed = [vals[k]["closed_form"] for k in ("none", "one_clamp", "two_clamps")]
        assert closed[0] > closed[1] > closed[2]


def test_clamped_curves_match_closed_form_with_nontrivial_s():
    t = np.linspace(0.0, 30.0, 80)
    curves = toy.clamping_curves(2.5, 0.08, 1.7, t)
    assert max(c["max_rel_error"] for c in curves.values()) < 1e-6
    # two clamps: plain exponential approach, log-loss falls linearly in t
    loss = curves["two_clamps"]["closed_form"]
    log_loss = np.log(loss[1:8])  # later the loss hits rounding error
    slopes = np.diff(log_loss) / np.diff(t[1:8])
    np.testing.assert_allclose(slopes, slopes[0], rtol=1e-6)


# --------------------------------------------------------------------- vector model


def test_vector_loss_and_gradient_match_tensor_and_finite_differences():
    truth, params = toy.random_factors(6, 1), toy.random_factors(6, 2)
    assert toy.vector_loss(params, truth) == pytest.approx(toy.vector_loss_tensor(params, truth), rel=1e-12)
    grads = toy.vector_gradient(params, truth)
    h = 1e-6
    for name in toy.FACTOR_NAMES:
        for i in range(6):
            plus = {k: v.copy() for k, v in params.items()}
            minus = {k: v.copy() for k, v in params.items()}
            plus[name][i] += h
            minus[name][i] -= h
            fd = (toy.vector_loss_tensor(plus, truth) - toy.vector_loss_tensor(minus, truth)) / (2 * h)
            assert grads[name][i] == pytest.approx(fd, rel=1e-5, abs=1e-9)


@given(seed=st.integers(0, 10_000), scales=st.tuples(*[st.floats(0.02, 0.3)] * 3))
@settings(max_examples=5)
def test_vector_model_reduces_to_scalar_under_aligned_init(seed, scales):
    n, lr, steps = 20, 1.0, 300
    truth = toy.random_factors(n, seed)
    init = {k: scale * truth[k] for k, scale in zip(toy.FACTOR_NAMES, scales)}
    history = toy.train_vector_model(truth, init, lr, steps)
    eq = toy.aligned_scalar_equivalent(scales, truth, lr)
    assert eq["tau"] == n ** 3 / lr
    _, W = toy.gradient_descent(eq["w0"], eq["s"], eq["scalar_lr"], steps)
    # vector GD with aligned init is exactly scalar GD on (alpha|a*|, beta|b*|, gamma|c*|)
    final = history["params"]
    norms = np.array([np.linalg.norm(truth[k]) for k in toy.FACTOR_NAMES])
    alphas = np.array([final[k] @ truth[k] for k in toy.FACTOR_NAMES]) / norms ** 2
    np.testing.assert_allclose(alphas * norms, W[-1], rtol=1e-9)
    assert max(history["a/misalignment"]) < 1e-12
    loss_scalar = 0.5 * (eq["s"] - W.prod(axis=1)) ** 2 / n ** 3
    # (the inner-product loss has a rounding floor of ~1e-15 once the loss is ~0)
    np.testing.assert_allclose(history["loss"], loss_scalar, rtol=1e-7, atol=1e-12)


@pytest.mark.parametrize("lr", [0.5, 0.25])
def test_aligned_vector_model_follows_flow_with_tau_n3_over_lr(lr):
    # flow limit, time counted in steps: tau dw/dt = -dL/dw with tau = N^3 / lr
    n, scales = 20, (0.08, 0.1, 0.12)
    truth = toy.random_factors(n, 7)
    init = {k: scale * truth[k] for k, scale in zip(toy.FACTOR_NAMES, scales)}
    eq = toy.aligned_scalar_equivalent(scales, truth, lr)
    steps = int(1.5 * toy.simulated_time_to_fraction(eq["w0"], eq["s"], eq["tau"], 0.6))
    history = toy.train_vector_model(truth, init, lr, steps)
    t = np.arange(steps + 1, dtype=float)
    u_flow = toy.simulate_flow(t, eq["w0"], eq["s"], eq["tau"]).prod(axis=1)
    loss_flow = 0.5 * (eq["s"] - u_flow) ** 2 / n ** 3
    gap = np.max(np.abs(np.array(history["loss"]) - loss_flow)) / history["loss"][0]
    assert gap < 0.06 * lr  # Euler error, proportional to lr (measured ~0.037 lr)


def test_vector_clamps_shorten_plateau_and_hold_truth():
    truth, init = toy.random_factors(20, 0), toy.random_factors(20, 1)
    times = {}
    for label, clamp in toy.VECTOR_CLAMPS.items():
        h = toy.train_vector_model(truth, init, 1.0, 1000, clamp)
        for k in clamp:
            np.testing.assert_array_equal(h["params"][k], truth[k])
            assert h[f"{k}/misalignment"][-1] == pytest.approx(0.0, abs=1e-15)
        pc = describe_phase_change(h["step"], h["loss"], plateau_level=h["loss"][0] * 0 + max(h["loss"][5:50]))
        times[label] = pc.transition_time
    assert times["none"] > times["one_clamp"] > times["two_clamps"]
    assert h["a/loss_others_true"][-1] < 1e-10


# ------------------------------------------------------------------------------ fit


@pytest.mark.parametrize("depth, tau, w0", [(2, 1500.0, 0.03), (3, 800.0, 0.08)])
def test_fit_recovers_parameters_it_generated(depth, tau, w0):
    x = np.arange(0.0, 30000.0, 100.0)
    loss = toy.toy_loss_curve(x, depth, tau, w0, floor=0.01, height=0.68)
    fit = toy.fit_scalar_model(x, loss)
    assert fit.depth == depth
    assert fit.tau == pytest.approx(tau, rel=1e-4)
    assert fit.w0 == pytest.approx(w0, rel=1e-4)
    assert fit.floor == pytest.approx(0.01, abs=1e-5)
    assert fit.height == pytest.approx(0.68, rel=1e-4)
    assert fit.rms < 1e-6
    assert all(fit.rms_by_depth[d] > 1e-4 for d in fit.rms_by_depth if d != depth)


def test_fit_with_noise_and_initial_fall_picks_depth3():
    rng = np.random.default_rng(0)
    x = np.arange(0.0, 31250.0, 125.0)
    clean = toy.toy_loss_curve(x, 3, 600.0, 0.06, 0.0, math.log(2), x_start=1500.0)
    loss = clean + (math.log(5) - math.log(2)) * np.exp(-x / 300.0) + 0.005 * rng.standard_normal(x.size)
    fit = toy.fit_scalar_model(x, loss, x_start=1500.0)
    assert fit.depth == 3
    assert fit.tau == pytest.approx(600.0, rel=0.1)
    assert fit.rms < 0.01


# ------------------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(depth=3, s=1.0, w0=0.1, tau=0.0), r"tau must be a positive finite number, got 0.0"),
        (dict(depth=3, s=1.0, w0=0.1, tau=-1.0), r"tau must be a positive"),
        (dict(depth=3, s=0.0, w0=0.1, tau=1.0), r"s must be a positive finite number, got 0.0"),
        (dict(depth=3, s=-2.0, w0=0.1, tau=1.0), r"s must be a positive"),
        (dict(depth=2, s=1.0, w0=0.0, tau=1.0), r"w0 must be in \(0, s\^\(1/D\)\) .* got 0.0 \(not above 0\)"),
        (dict(depth=3, s=8.0, w0=2.0, tau=1.0), r"\(0, 2\) for s=8, depth=3; got 2.0 \(at or above the target"),
        (dict(depth=0, s=1.0, w0=0.1, tau=1.0), r"depth must be an integer >= 1, got 0"),
        (dict(depth=4, s=1.0, w0=0.1, tau=1.0), r"depth must be one of \(1, 2, 3\) .* got 4; use simulate_flow"),
        (dict(depth=2.0, s=1.0, w0=0.1, tau=1.0), r"depth must be an integer"),
    ],
)
def test_closed_forms_reject_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        toy.plateau_length(**kwargs)
    with pytest.raises(ValueError, match=match):
        toy.closed_form_product(np.array([0.0, 1.0]), **kwargs)


def test_other_bad_inputs():
    truth, init = toy.random_factors(4, 0), toy.random_factors(4, 1)
    with pytest.raises(ValueError, match=r"clamp contains unknown factor 'd'; allowed: \('a', 'b', 'c'\)"):
        toy.train_vector_model(truth, init, clamp=("c", "d"))
    with pytest.raises(ValueError, match=r"lr must be a positive finite number, got -1"):
        toy.train_vector_model(truth, init, lr=-1)
    with pytest.raises(ValueError, match=r"clamped must hold factor indices in \[0, 2\], got 3"):
        toy.simulate_flow([0.0, 1.0], [0.1, 0.1, 0.1], 1.0, 1.0, clamped=[3])
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\), got 1.5"):
        toy.time_to_fraction(2, 1.0, 0.1, 1.0, 1.5)
    with pytest.raises(ValueError, match=r"n_clamped must be an integer in \[0, 2\], got 3"):
        toy.clamped_model(3, 3, 1.0, 1.0)
    with pytest.raises(ValueError, match=r"t must be finite and >= 0"):
        toy.closed_form_factor([-1.0], 2, 1.0, 0.1, 1.0)
    with pytest.raises(ValueError, match=r"steps must be an integer >= 0, got 2.5"):
        toy.gradient_descent([0.1, 0.2], 1.0, 0.1, 2.5)


# ------------------------------------------------------------------------------ CLI


def test_run_cli_json_and_figure(tmp_path, capsys):
    figure = tmp_path / "clamp.png"
    assert toy.run_cli(["--json", "--figure", str(figure)]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("plateau_length", "transition_time"):
        vals = out[key]
        assert set(vals) >= {"none", "one_clamp", "two_clamps"}
        assert vals["none"] > vals["one_clamp"] > vals["two_clamps"] > 0
    assert out["closed_form_max_rel_error"] < 1e-6
    assert figure.stat().st_size > 10_000


def test_run_cli_table_and_bad_argument(capsys):
    assert toy.run_cli(["--no-figure", "--w0", "0.1"]) == 0
    out = capsys.readouterr().out
    assert "none (D=3)" in out and "two (D=1)" in out and "units of tau" in out
    with pytest.raises(SystemExit):
        toy.run_cli(["--w0", "1.5", "--no-figure"])
    assert "w0 must be in (0, s^(1/D))" in capsys.readouterr().err


# ------------------------------------------------------ extreme settings, bounded work


EXTREME_SETTINGS = [
    ["--tau", "1e12"], ["--tau", "1e-12"], ["--w0", "0.99999999"], ["--w0", "1e-12"],
    ["--s", "1e12", "--w0", "1e-8"], ["--s", "1e-12", "--w0", "1e-16"],
    ["--s", "1e12", "--w0", "9999.99"], ["--s", "1e-12", "--tau", "1e12", "--w0", "1e-16"],
]


@pytest.mark.parametrize("settings", EXTREME_SETTINGS, ids=" ".join)
def test_toy_command_completes_at_extreme_valid_settings(settings, capsys):
    assert toy.run_cli(["--json", "--no-figure"] + settings) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("plateau_length", "transition_time"):
        for label, closed in out[key].items():
            simulated = out[key + "_simulation"][label]
            assert simulated is not None and math.isfinite(closed)
            # float64 resolves a plateau of 1e12 relaxation times to ~1e-4 of its length
            assert simulated == pytest.approx(closed, rel=1e-3, abs=1e-3 * max(out[key].values()))
    assert out["closed_form_max_rel_error"] < 1e-3


def test_toy_figure_uses_a_log_time_axis_when_scales_differ(tmp_path, capsys):
    t = toy.time_grid(1.0, 1e-9, 1.0, 400)
    assert t[0] == 0.0 and t[-1] / t[1] > 1e6            # log-spaced over many decades
    default = toy.time_grid(1.0, 0.05, 1.0, 50)           # similar scales: a linear grid
    np.testing.assert_allclose(default, np.linspace(0.0, default[-1], 50))
    assert default[-1] >= 1.3 * toy.transition_time(3, 1.0, 0.05, 1.0)
    figure = tmp_path / "small_w0.png"
    assert toy.run_cli(["--w0", "1e-9", "--figure", str(figure)]) == 0
    assert figure.stat().st_size > 10_000
    curves = toy.clamping_curves(1.0, 1e-9, 1.0, t)
    for label, curve in curves.items():        # every curve has finished inside the grid
        assert curve["closed_form"][-1] < 1e-6 * curve["closed_form"][0]


def test_simulation_work_is_bounded(monkeypatch):
    # a balanced D = 3 flow relaxes with time constant 1/3: crossing 1e12 of it with an
    # explicit solver would take ~1e12 steps; the solver gives up with a clear error instead
    # (a smaller budget than the default keeps this test quick; the mechanism is the same)
    from tinyinduction.toy import scalar
    monkeypatch.setattr(scalar, "MAX_RHS_EVALUATIONS", 20_000)
    with pytest.raises(RuntimeError, match="gave up after 20,000 evaluations"):
        toy.simulate_flow([0.0, 1e12], [0.9, 0.9, 0.9], 1.0, 1.0)


def test_every_public_name_of_the_old_module_still_imports():
    from tinyinduction import toy as package
    from tinyinduction.toy import (DEFAULT_FIGURE, VECTOR_CLAMPS, ToyFit, clamping_curves,  # noqa: F401
                                   fit_scalar_model, plot_clamping_figure, run_cli, toy_loss_curve)
    for name in ("target_factor", "depth3_antiderivative", "closed_form_time", "closed_form_factor",
                 "closed_form_product", "time_to_fraction", "plateau_length", "transition_time",
                 "product_loss", "product_gradient", "simulate_flow", "simulated_time_to_fraction",
                 "conserved_quantities", "gradient_descent", "clamped_model", "clamping_summary",
                 "CLAMP_LABELS", "random_factors", "vector_loss", "vector_loss_tensor",
                 "vector_gradient", "misalignment", "train_vector_model", "aligned_scalar_equivalent",
                 "PLATEAU_FRACTION", "TRANSITION_FRACTION", "CLOSED_FORM_DEPTHS", "FACTOR_NAMES",
                 "ODE_RTOL", "ODE_ATOL"):
        assert hasattr(package, name), name


def test_toy_fit_never_goes_below_zero_loss():
    # a sigmoidal drop that D = 1 cannot follow: unconstrained, its best line would cross 0
    x = np.arange(0.0, 30000.0, 250.0)
    loss = toy.toy_loss_curve(x, 3, 1500.0, 0.1, 0.0, math.log(2))
    fit = toy.fit_scalar_model(x, loss, depths=(1,), x_start=0.0)
    assert fit.floor >= 0 and fit.height >= 0
    assert fit.predict(np.linspace(0, 60000, 500)).min() >= 0


# -------------------------------------------------- strings, None and other wrong kinds

TRUTH, INIT = toy.random_factors(4, 0), toy.random_factors(4, 1)
CURVE_X = np.arange(0.0, 3000.0, 50.0)
CURVE = toy.toy_loss_curve(CURVE_X, 2, 300.0, 0.05, 0.0, 0.7)

# (function, valid keyword arguments, arguments that accept None)
TOY_CALLS = [
    (toy.closed_form_product, dict(t=[0.0, 1.0], depth=3, s=1.0, w0=0.1, tau=1.0), ()),
    (toy.time_to_fraction, dict(depth=2, s=1.0, w0=0.1, tau=1.0, fraction=0.5), ()),
    (toy.simulate_flow, dict(t=[0.0, 1.0], w0=[0.1, 0.2], s=1.0, tau=1.0, clamped=()), ("clamped",)),
    (toy.simulated_time_to_fraction, dict(w0=[0.3, 0.3], s=1.0, tau=1.0, fraction=0.5, t_max=100.0),
     ("t_max",)),
    (toy.gradient_descent, dict(w0=[0.1, 0.2], s=1.0, lr=0.1, steps=3, tau=1.0), ()),
    (toy.product_gradient, dict(w=[0.1, 0.2], s=1.0), ()),
    (toy.clamped_model, dict(depth=3, n_clamped=1, s=1.0, tau=1.0), ()),
    (toy.clamping_summary, dict(s=1.0, w0=0.3, tau=1.0, depth=3), ()),
    (toy.random_factors, dict(n=4, seed=0), ()),
    (toy.train_vector_model, dict(truth=TRUTH, init=INIT, lr=1.0, steps=2, clamp=()), ("clamp",)),
    (toy.aligned_scalar_equivalent, dict(scales=[0.1, 0.1, 0.1], truth=TRUTH, lr=1.0), ()),
    (toy.toy_loss_curve, dict(x=CURVE_X, depth=2, tau=300.0, w0=0.05, floor=0.0, height=0.7), ()),
    (toy.fit_scalar_model, dict(x=CURVE_X, loss=CURVE, depths=(2,), x_start=0.0), ("x_start",)),
]
WRONG_KINDS = [None, "0.5", "abc", b"1", complex(1, 2), True, object()]


@pytest.mark.parametrize("function, kwargs, none_allowed", TOY_CALLS, ids=lambda v: getattr(v, "__name__", ""))
def test_toy_functions_name_the_argument_and_the_value(function, kwargs, none_allowed):
    function(**kwargs)                       # the valid call works
    for name in kwargs:
        for value in WRONG_KINDS:
            if value is None and name in none_allowed:
                continue
            with pytest.raises((TypeError, ValueError)) as error:
                function(**{**kwargs, name: value})
                print(f"{function.__name__} accepted {name}={value!r}")
            message = str(error.value)
            assert name in message, (function.__name__, name, value, message)
            assert repr(value)[:25] in message or name in ("truth", "init", "clamp"), message
