"""Lesson 04's exercises: the gradient of the product model and its closed forms.

Right answers: central finite differences of toy.product_loss, and the numerical ODE
solution toy.simulate_flow (scipy's solve_ivp at rtol 1e-11).
"""
from __future__ import annotations

import numpy as np

from .. import toy
from .compare import numerical_gradient
from .core import Case, Exercise, Mistake, register


def _gradient_cases(rng):
    cases = []
    for w, s in ((np.array([0.5]), 1.0), (np.array([0.2, 0.3]), 1.0),
                 (rng.uniform(0.05, 0.6, 3), 2.0), (np.array([0.3, 0.0, 1.2, -0.7]), 1.5),
                 (rng.uniform(-1.0, 1.0, 5), 0.8)):
        expected = numerical_gradient(lambda x, s=s: toy.product_loss(x, s), w)
        cases.append(Case(f"D={w.size}, w={np.round(w, 3).tolist()}, s={s:g}", (w, s), expected,
                          "central finite differences of toy.product_loss", rtol=1e-6, atol=1e-9,
                          sizes={"D": w.size}))
    return cases


register(Exercise(
    name="product_gradient",
    lesson="04",
    solution=toy.product_gradient,
    make_cases=_gradient_cases,
    task="""
    Gradient of the toy loss L = 1/2 (s - u)^2 with u = w_1 w_2 ... w_D.

    w [D] (floats, any of them may be 0), s a number -> dL/dw [D].

    dL/dw_i = -(s - u) times the product of every factor except w_i. Do not divide
    u by w_i: a factor may be 0 (np.prod over the others, or cumulative products,
    works).
    """,
    output_names=("dL/dw",),
    output_axes=(("factor",),),
    hint="for each i multiply the other factors: np.prod(np.delete(w, i)), then times -(s - u)",
    wrong_answers=(
        Mistake("forgets the minus sign", lambda w, s: -toy.product_gradient(w, s),
                named_by="opposite sign"),
        Mistake("divides by w_i (breaks when a factor is 0)",
                lambda w, s: -(s - np.prod(w)) * np.prod(w) / np.asarray(w)),
        Mistake("multiplies every factor, w_i included",
                lambda w, s: -(s - np.prod(w)) * np.full(np.shape(w), np.prod(w))),
        Mistake("forgets the (s - u) factor", lambda w, s: -np.array(
            [np.prod(np.delete(np.asarray(w), i)) for i in range(np.size(w))])),
        Mistake("a hard-coded D = 3: [w2 w3, w1 w3, w1 w2]",
                lambda w, s: -(s - np.prod(w)) * np.array([w[1] * w[2], w[0] * w[2], w[0] * w[1]]),
                named_by="your function raised IndexError"),
    ),
))


def _closed_form_cases(rng):
    cases = []
    for depth, s, w0, tau in ((1, 1.0, 0.1, 1.0), (2, 1.0, 0.1, 1.0), (2, 2.5, 0.05, 3.0),
                              (1, 0.7, float(rng.uniform(0.05, 0.5)), 0.4), (2, 1.0, 1e-3, 1.0)):
        t_end = 1.5 * toy.transition_time(depth, s, w0, tau)
        t = np.linspace(0.0, t_end, 40)
        expected = toy.simulate_flow(t, [w0] * depth, s, tau).prod(axis=1)
        cases.append(Case(f"D={depth}, s={s:g}, w0={w0:.3g}, tau={tau:g}, t from 0 to {t_end:.3g}",
                          (t, depth, s, w0, tau), expected,
                          "the numerical solution toy.simulate_flow (solve_ivp)", rtol=1e-6, atol=1e-10,
                          sizes={"D": depth}))
    return cases


register(Exercise(
    name="closed_form_product",
    lesson="04",
    solution=toy.closed_form_product,
    make_cases=_closed_form_cases,
    task="""
    The product u(t) = w(t)^D of D equal factors under gradient flow, for D = 1 and 2.

    t [n] times >= 0, depth D (1 or 2), target s > 0, initial factor w0 in
    (0, s^(1/D)), time constant tau > 0 -> u [n].

    Every factor follows tau dw/dt = w^(D-1) (s - w^D) from w(0) = w0.
    D = 1: a linear equation, solve it directly.
    D = 2: write the equation for u = w^2: tau du/dt = 2 u (s - u), a logistic
    equation; separate variables (partial fractions) and solve for u.
    (D = 3 is in the package too, but the check only asks for D = 1 and 2.)
    """,
    output_names=("u",),
    output_axes=(("time index",),),
    hint="test your formula at t = 0 (u must be w0^D) and for large t (u must approach s)",
    wrong_answers=(
        Mistake("D = 2 with the D = 1 time constant (the factor 2 of tau du/dt = 2 u (s - u) left out)",
                lambda t, depth, s, w0, tau: toy.closed_form_product(t, depth, s, w0,
                                                                     tau if depth == 1 else 2 * tau)),
        Mistake("returns the factor w, not the product u",
                lambda t, depth, s, w0, tau: toy.closed_form_factor(t, depth, s, w0, tau)),
        Mistake("starts from w0 instead of w0^D for D = 2",
                lambda t, depth, s, w0, tau: toy.closed_form_product(
                    t, depth, s, w0 if depth == 1 else np.sqrt(w0), tau)),
        Mistake("the D = 1 solution for every D",
                lambda t, depth, s, w0, tau: toy.closed_form_product(t, 1, s, w0 ** depth, tau),
                named_by="only work for D = 1"),
    ),
))
