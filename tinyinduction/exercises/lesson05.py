"""Lesson 05's exercises: the ideal match pattern (clamp B) and the backward pass of the
shift that clamp A uses to hand layer 1 "perfect previous tokens".

Right answers: the package's subcircuits.match_target, and central finite differences
of subcircuits.shift_middle_forward.
"""
from __future__ import annotations

import numpy as np

from ..subcircuits import match_target, shift_middle_backward, shift_middle_forward
from ..tasks.fewshot import FewShotBatch
from .core import Case, Exercise, numerical_gradient, register


def _batch(query_pair):
    query_pair = np.asarray(query_pair)
    return FewShotBatch(None, None, None, query_pair, None)


def _match_cases(rng):
    cases = []
    for description, query_pair, s, n_positions in (
            ("3 sequences, s = 1 (a perfect induction head)", [0, 1, 0], 1.0, 5),
            ("4 sequences, s = 0.7", [1, 1, 0, 1], 0.7, 5),
            ("2 sequences, s = 0 (always the wrong label)", [0, 1], 0.0, 5),
            ("3 context pairs (T = 7), s = 0.4: the rest shared by the two other labels",
             list(rng.integers(0, 3, 5)), 0.4, 7)):
        batch = _batch(query_pair)
        cases.append(Case(description, (batch, s, n_positions), match_target(batch, s, n_positions),
                          "the package's subcircuits.match_target", rtol=1e-12, atol=1e-12))
    return cases


register(Exercise(
    name="match_target",
    lesson="05",
    solution=match_target,
    make_cases=_match_cases,
    task="""
    The query row that clamp B (match) puts into one layer-1 head -> [B, 1, 1, T].

    batch.query_pair [B]: which context pair has the query's class (0..C-1);
    s: the weight on the correct label; n_positions: T = 2C + 1 (x1 l1 ... xC lC xq).
    Label of pair c sits at position 2c + 1.

    row[b, 0, 0, 2 * query_pair[b] + 1] = s
    row[b, 0, 0, other label positions] = (1 - s) / (C - 1)
    row[b, 0, 0, exemplar positions and the query] = 0
    (The two leading 1-axes let it broadcast over heads and query rows.)
    """,
    output_names=("row",),
    output_axes=(("sequence", "head", "query", "key"),),
    hint="start from zeros (B, 1, 1, T); set the odd positions 1..T-2 to (1-s)/(C-1), then the right one to s",
    wrong_answers=(
        ("s on label 1 always", lambda batch, s, n: np.broadcast_to(
            np.where(np.arange(n) == 1, s, np.where(np.arange(n) % 2 == 1, 1 - s, 0.0)) * (np.arange(n) < n - 1),
            (len(batch.query_pair), 1, 1, n)).copy()),
    ),
))


def _shift_cases(rng):
    cases = []
    for shape in ((1, 5, 1), (3, 5, 4), (2, 7, 3), (2, 3, 2)):
        d_y = rng.standard_normal(shape)
        x = rng.standard_normal(shape)
        # d loss / d x for loss = sum(d_y * shift(x)): finite differences, not the solution
        expected = numerical_gradient(lambda v: float((d_y * shift_middle_forward(v)).sum()), x)
        cases.append(Case(f"d_y of shape {shape}", (d_y,), expected,
                          "central finite differences of shift_middle_forward", rtol=1e-6, atol=1e-8))
    return cases


register(Exercise(
    name="shift_middle_backward",
    lesson="05",
    solution=shift_middle_backward,
    make_cases=_shift_cases,
    task="""
    Backward of the shift that clamp A applies to the embeddings.

    Forward (shift_middle_forward): x [B, T, D] -> y [B, T, D] with
        y[:, i] = x[:, i - 1] for i = 1 .. T-2,  y[:, 0] = x[:, 0],  y[:, T-1] = x[:, T-1].
    Given d_y = d loss / d y [B, T, D], return d_x = d loss / d x [B, T, D].

    Every y position copies one x position, so its gradient goes back there; an x
    position copied twice gets the sum of both gradients.
    """,
    output_names=("d_x",),
    output_axes=(("sequence", "position", "feature"),),
    hint="x[:, 0] is copied into y[:, 0] and y[:, 1]; x[:, T-2] into nothing",
    wrong_answers=(
        ("shifts the gradient the same way as the forward", shift_middle_forward),
        ("forgets that x[:, 0] is used twice", lambda d_y: np.concatenate(
            [d_y[:, :1], d_y[:, 2:-1], np.zeros_like(d_y[:, :1]), d_y[:, -1:]], axis=1)),
    ),
))
