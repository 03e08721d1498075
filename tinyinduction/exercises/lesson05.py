"""Lesson 05's exercises: the ideal match pattern (clamp B) and the backward pass of the
shift that clamp A uses to hand layer 1 "perfect previous tokens".

Right answers: the package's subcircuits.match_target, and central finite differences
of subcircuits.shift_middle_forward.
"""
from __future__ import annotations

import numpy as np

from ..subcircuits import match_target, shift_middle_backward, shift_middle_forward
from ..tasks.fewshot import FewShotBatch
from .compare import numerical_gradient
from .core import Case, Exercise, Mistake, register


def _batch(query_pair):
    query_pair = np.asarray(query_pair)
    return FewShotBatch(None, None, None, query_pair, None)


def _match_cases(rng):
    cases = []
    for description, query_pair, s, n_positions in (
            ("3 sequences, C = 2 pairs (T = 5), s = 1 (a perfect induction head)", [0, 1, 0], 1.0, 5),
            ("4 sequences, C = 2 pairs (T = 5), s = 0.7", [1, 1, 0, 1], 0.7, 5),
            ("2 sequences, C = 2 pairs (T = 5), s = 0 (always the wrong label)", [0, 1], 0.0, 5),
            ("5 sequences, C = 3 pairs (T = 7), s = 0.4: the rest shared by the two other labels",
             [0, 1, 2] + list(rng.integers(0, 3, 2)), 0.4, 7),
            ("4 sequences, C = 4 pairs (T = 9), s = 0.85", [3, 0, 2, 1], 0.85, 9)):
        batch = _batch(query_pair)
        cases.append(Case(description, (batch, s, n_positions), match_target(batch, s, n_positions),
                          "the package's subcircuits.match_target", rtol=1e-12, atol=1e-12,
                          sizes={"C": (n_positions - 1) // 2, "B": len(query_pair)}))
    return cases


def _unshared_rest(batch, s, n_positions):
    """Mistake: every other label gets 1 - s (rows no longer sum to 1 for C > 2)."""
    query_pair = np.asarray(batch.query_pair)
    row = np.zeros((len(query_pair), 1, 1, n_positions))
    row[:, 0, 0, 1:n_positions - 1:2] = 1.0 - s
    row[np.arange(len(query_pair)), 0, 0, 2 * query_pair + 1] = s
    return row


def _two_pairs_only(batch, s, n_positions):
    """Mistake: written for C = 2: s on the right label, 1 - s on 'the other one'."""
    query_pair = np.asarray(batch.query_pair)
    rows = np.arange(len(query_pair))
    row = np.zeros((len(query_pair), 1, 1, n_positions))
    row[rows, 0, 0, 2 * (1 - query_pair) % (n_positions - 1) + 1] = 1.0 - s
    row[rows, 0, 0, 2 * query_pair + 1] = s
    return row


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
        Mistake("s on label 1 always", lambda batch, s, n: np.broadcast_to(
            np.where(np.arange(n) == 1, s, np.where(np.arange(n) % 2 == 1, 1 - s, 0.0)) * (np.arange(n) < n - 1),
            (len(batch.query_pair), 1, 1, n)).copy()),
        Mistake("off by one: s on the exemplar (2c), not its label (2c + 1)",
                lambda batch, s, n: np.roll(match_target(batch, s, n), -1, axis=-1)),
        Mistake("1 - s on each other label, not shared: (1 - s) / (C - 1)", _unshared_rest),
        Mistake("C = 2 hard-coded: 1 - s on the one other label 2 (1 - query_pair) + 1", _two_pairs_only,
                named_by="only work for C = 2"),
        Mistake("an [B, T] row without the two 1-axes",
                lambda batch, s, n: match_target(batch, s, n)[:, 0, 0, :], named_by="shape"),
    ),
))


def _shift_cases(rng):
    cases = []
    for shape in ((1, 5, 1), (3, 5, 4), (2, 7, 3), (2, 3, 2), (4, 9, 2)):
        d_y = rng.standard_normal(shape)
        x = rng.standard_normal(shape)
        # d loss / d x for loss = sum(d_y * shift(x)): finite differences, not the solution
        expected = numerical_gradient(lambda v: float((d_y * shift_middle_forward(v)).sum()), x)
        cases.append(Case(f"d_y of shape {shape} [B, T, D]", (d_y,), expected,
                          "central finite differences of shift_middle_forward", rtol=1e-6, atol=1e-8,
                          sizes={"T": shape[1]}))
    return cases


def _five_positions_only(d_y):
    """Mistake: the backward written out for T = 5."""
    d_x = np.zeros_like(d_y)
    d_x[:, 0] = d_y[:, 0] + d_y[:, 1]
    d_x[:, 1] = d_y[:, 2]
    d_x[:, 2] = d_y[:, 3]
    d_x[:, 4] = d_y[:, 4]
    return d_x


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
        Mistake("shifts the gradient the same way as the forward", shift_middle_forward),
        Mistake("forgets that x[:, 0] is used twice", lambda d_y: np.concatenate(
            [d_y[:, :1], d_y[:, 2:-1], np.zeros_like(d_y[:, :1]), d_y[:, -1:]], axis=1)),
        Mistake("returns d_y unchanged (as if the shift were the identity)", lambda d_y: np.array(d_y)),
        Mistake("T = 5 hard-coded: positions 1, 2, 3 written out", _five_positions_only,
                named_by="only work for T = 5"),
    ),
))
