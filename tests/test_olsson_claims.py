"""Olsson et al.'s claims as tests on results.json: each criterion on constructed results,
on both sides of its threshold."""
import copy

import pytest

from tinyinduction.experiments import olsson_claims as oc


def model(**changes):
    base = {"max_prefix_matching": 0.7, "phase_change_step": 3000, "phase_change_onset_step": 2600,
            "phase_change_end_step": 3400, "steps": [0, 8000], "icl_score": -0.9, "icl_score_sem": 0.02,
            "icl_diff_vs_1L": -0.4, "icl_diff_vs_1L_sem": 0.01,
            "icl_score_before": -0.5, "icl_score_before_sem": 0.02, "icl_score_after": -0.8,
            "icl_score_after_sem": 0.02, "icl_change_at_phase_change": -0.3,
            "icl_change_at_phase_change_sem": 0.02, "icl_change_vs_1L_same_steps": -0.28,
            "icl_change_vs_1L_same_steps_sem": 0.02,
            "loss_at_phase_change": {"bump": 0.05, "slope_during": 0.01, "slope_before": -0.05},
            "pca_turn_degrees": 80.0, "pca_turn_degrees_1L_same_steps": 10.0}
    base.update(changes)
    return base


def results():
    one = model(max_prefix_matching=0.05, phase_change_step=None, phase_change_onset_step=None,
                phase_change_end_step=None, icl_score=-0.5, icl_diff_vs_1L=None)
    ablation = {"induction_heads": [[1, 2]], "clean_icl_score": -0.9, "induction_heads_icl_score": -0.6,
                "other_heads_icl_scores": [-0.85, -0.9, -0.8]}
    return {"models": {"1L": one, "2L": model(), "1L_smeared": model(phase_change_step=400),
                       "2L_smeared": model(phase_change_step=500), "2L_second_seed": model()},
            "ablation": ablation, "ablation_second_seed": copy.deepcopy(ablation),
            "second_seed_model": "2L_second_seed"}


def test_every_claim_agrees_on_results_made_to_agree():
    claims = oc.all_claims(results())
    assert [c.number for c in claims] == [1, 2, 3, 4, 5, 6, 7, 2, 3, 4, 6]
    assert all(c.agrees is True for c in claims), [(c.number, c.ours) for c in claims if not c.agrees]
    assert "a bump" in claims[3].ours


@pytest.mark.parametrize("number, edit", [
    (1, lambda r: r["models"]["1L"].update(max_prefix_matching=0.35, phase_change_step=900)),
    (2, lambda r: r["models"]["2L"].update(phase_change_onset_step=1000, phase_change_end_step=2500)),  # slow rise
    (2, lambda r: r["models"]["2L"].update(phase_change_step=None)),
    (3, lambda r: r["models"]["2L"].update(icl_change_at_phase_change=-0.05)),          # < 3 s.e.
    (3, lambda r: r["models"]["2L"].update(icl_change_vs_1L_same_steps=0.0)),           # 1L changed as much
    (3, lambda r: r["models"]["2L"].update(icl_diff_vs_1L=-0.15)),                      # gap too small
    (4, lambda r: r["models"]["2L"].update(loss_at_phase_change={"bump": 0.0, "slope_during": -0.06,
                                                                 "slope_before": -0.05})),
    (5, lambda r: r["models"]["2L_smeared"].update(phase_change_step=3500)),
    (5, lambda r: r["models"]["1L_smeared"].update(max_prefix_matching=0.2, phase_change_step=None)),
    (6, lambda r: r["ablation"].update(induction_heads_icl_score=-0.75)),               # gives back 0.15 of 0.4
    (6, lambda r: r["ablation"].update(other_heads_icl_scores=[-0.5, -0.5])),           # others give back more
    (7, lambda r: r["models"]["2L"].update(pca_turn_degrees=30.0)),
    (7, lambda r: r["models"]["2L"].update(pca_turn_degrees_1L_same_steps=85.0)),
])
def test_each_claim_fails_when_its_criterion_fails(number, edit):
    r = results()
    edit(r)
    claim = [c for c in oc.all_claims(r) if c.number == number][0]
    assert claim.agrees is False, claim.ours


def test_a_change_of_slope_counts_and_is_named():
    r = results()
    r["models"]["2L"]["loss_at_phase_change"] = {"bump": 0.0, "slope_during": -0.12, "slope_before": -0.05}
    claim = oc.claim_4(r)
    assert claim.agrees and "a change of slope" in claim.ours


def test_missing_models_are_not_measured_rather_than_failed():
    r = results()
    del r["models"]["1L_smeared"]
    del r["ablation"]
    assert oc.claim_5(r).agrees is None and oc.claim_6(r).agrees is None
