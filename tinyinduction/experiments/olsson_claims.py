"""Olsson et al. (2022)'s claims, each with the test that decides "agrees?" on our numbers.

These criteria were written down and committed before the decisive runs (seeds 5 and 6 of
the default setting) were made; nothing in them was changed after seeing those runs (the
README's Olsson section says so, and `git log` of this file shows it). Each function takes
results.json's dict and returns a Claim: what the paper says, what we measured, and
whether it agrees (True / False / None when the runs needed are missing).

Terms (computed in olsson_analysis.py):
- best[s]: the largest prefix-matching score of any head at checkpoint s; start = best at
  step 0, top = its maximum over training.
- phase change (step): the first checkpoint with best >= (start + top) / 2, if top >= 0.3.
- onset / end of the phase change: the last checkpoint before it with best <= start +
  0.1 (top - start), and the first at or after it with best >= start + 0.9 (top - start).
- "before" and "after": the ICL score at onset and at end, on the same plain held-out
  windows; their change has a paired standard error (per-window differences).
"""
from __future__ import annotations

from dataclasses import dataclass

INDUCTION_PREFIX = 0.3        # a head with prefix matching >= this is an induction head
ICL_CHANGE_SE = 3.0           # claim 3: the ICL change at the phase change, in standard errors
ICL_GAP = -0.2                # claim 3: final 2L - 1L ICL difference at most this (nats)
BUMP = 0.02                   # claim 4: a rise of the plain loss inside the phase change (nats)
SLOPE_RATIO = 2.0             # claim 4: descent at least this many times steeper than before
RETURNED_SHARE = 0.5          # claim 6: ablation gives back at least this share of 2L - 1L
TURN_DEGREES = 45.0           # claim 7: the PCA trajectory turns by at least this angle

PAPER = {
    1: "1-layer attention-only models form no induction heads",
    2: "2-layer models form induction heads, abruptly, early in training (a phase change)",
    3: "at the phase change the ICL score drops sharply and stays (about -0.4 nats; "
       "1-layer models about 0)",
    4: "the phase change is visible in the loss curve as a bump",
    5: "the smeared key lets a 1-layer model form induction heads, and a 2-layer one earlier",
    6: "ablating the induction heads removes most of the ICL score; other heads much less",
    7: "per-token-loss PCA trajectories turn at the phase change",
}


@dataclass
class Claim:
    number: int
    claim: str
    ours: str
    agrees: bool | None
    criterion: str


def _missing(number, what):
    return Claim(number, PAPER[number], f"not measured ({what} missing)", None, "")


def claim_1(results) -> Claim:
    m = results["models"].get("1L")
    if m is None:
        return _missing(1, "1L")
    ok = m["max_prefix_matching"] < INDUCTION_PREFIX and m["phase_change_step"] is None
    return Claim(1, PAPER[1], f"1L: best prefix-matching head {m['max_prefix_matching']:.2f} at the end; "
                 f"phase change: {'none' if m['phase_change_step'] is None else m['phase_change_step']}",
                 ok, f"best prefix matching < {INDUCTION_PREFIX} and no phase change")


def claim_2(results, name="2L") -> Claim:
    m = results["models"].get(name)
    if m is None:
        return _missing(2, name)
    phase = m["phase_change_step"]
    if phase is None:
        return Claim(2, PAPER[2], f"{name}: no head reaches {INDUCTION_PREFIX} (best "
                     f"{m['max_prefix_matching']:.2f}) in {m['steps'][-1]:,} steps", False, "")
    onset, end = m["phase_change_onset_step"], m["phase_change_end_step"]
    abrupt = end - onset <= onset
    ok = m["max_prefix_matching"] >= INDUCTION_PREFIX and abrupt
    return Claim(2, PAPER[2], f"{name}: best prefix-matching head {m['max_prefix_matching']:.2f}; rises "
                 f"from step {onset:,} to {end:,} (phase change at {phase:,}) after a plateau of "
                 f"{onset:,} steps", ok,
                 f"prefix matching >= {INDUCTION_PREFIX}, and the rise (10% -> 90% of the way up) "
                 "takes no more steps than the plateau before it")


def claim_3(results, name="2L") -> Claim:
    m, one = results["models"].get(name), results["models"].get("1L")
    if m is None or one is None:
        return _missing(3, f"{name} or 1L")
    gap, gap_se = m["icl_diff_vs_1L"], m["icl_diff_vs_1L_sem"]
    if m["phase_change_step"] is None:
        return Claim(3, PAPER[3], f"{name}: no phase change; final {name} - 1L ICL {gap:+.3f} ± {gap_se:.3f}",
                     False, "")
    change, change_se = m["icl_change_at_phase_change"], m["icl_change_at_phase_change_sem"]
    control, control_se = m["icl_change_vs_1L_same_steps"], m["icl_change_vs_1L_same_steps_sem"]
    ok = change <= -ICL_CHANGE_SE * change_se and control <= -ICL_CHANGE_SE * control_se and gap <= ICL_GAP
    return Claim(3, PAPER[3],
                 f"{name}: ICL {m['icl_score_before']:+.3f} ± {m['icl_score_before_sem']:.3f} (step "
                 f"{m['phase_change_onset_step']:,}) -> {m['icl_score_after']:+.3f} ± "
                 f"{m['icl_score_after_sem']:.3f} (step {m['phase_change_end_step']:,}): change "
                 f"{change:+.3f} ± {change_se:.3f} paired, {control:+.3f} ± {control_se:.3f} beyond 1L's "
                 f"change over the same steps; final {name} - 1L {gap:+.3f} ± {gap_se:.3f}", ok,
                 f"change <= -{ICL_CHANGE_SE:g} s.e., also beyond 1L's change over the same steps, and "
                 f"final {name} - 1L <= {ICL_GAP} nats")


def claim_4(results, name="2L") -> Claim:
    m = results["models"].get(name)
    if m is None or m["phase_change_step"] is None:
        return _missing(4, f"a phase change of {name}")
    shape = m["loss_at_phase_change"]
    bump = shape["bump"] >= BUMP
    steeper = shape["slope_during"] <= SLOPE_RATIO * shape["slope_before"] and shape["slope_during"] < 0
    kind = "a bump" if bump else ("a change of slope" if steeper else "neither")
    return Claim(4, PAPER[4],
                 f"{name}: {kind}. Plain held-out loss rises by at most {shape['bump']:.3f} inside the phase "
                 f"change; slope {shape['slope_during']:+.3f} nats per 1,000 steps during it, "
                 f"{shape['slope_before']:+.3f} over as many steps before", bump or steeper,
                 f"bump: a rise >= {BUMP} nats over the loss at onset; change of slope: the descent "
                 f"at least {SLOPE_RATIO:g}x as steep as before")


def claim_5(results) -> Claim:
    models = results["models"]
    if not {"2L", "1L_smeared", "2L_smeared"} <= set(models):
        return _missing(5, "a smeared-key model")
    one, two, plain = models["1L_smeared"], models["2L_smeared"], models["2L"]["phase_change_step"]
    one_ok = one["max_prefix_matching"] >= INDUCTION_PREFIX and one["phase_change_step"] is not None
    earlier = two["phase_change_step"] is not None and (plain is None or two["phase_change_step"] < plain)

    def at(step):
        return "never" if step is None else f"step {step:,}"
    return Claim(5, PAPER[5], f"1L_smeared: best head {one['max_prefix_matching']:.2f}, phase change "
                 f"{at(one['phase_change_step'])}; 2L_smeared {at(two['phase_change_step'])} vs 2L "
                 f"{at(plain)}", one_ok and earlier,
                 f"1L_smeared reaches {INDUCTION_PREFIX} with a phase change; 2L_smeared's comes earlier")


def claim_6(results, key="ablation", name="2L") -> Claim:
    a, m, one = results.get(key), results["models"].get(name), results["models"].get("1L")
    if a is None or m is None or one is None:
        return _missing(6, f"{key} or 1L")
    gap = one["icl_score"] - a["clean_icl_score"]             # what the second layer adds (> 0)
    returned = a["induction_heads_icl_score"] - a["clean_icl_score"]
    others = [score - a["clean_icl_score"] for score in a["other_heads_icl_scores"]]
    mean_other = sum(others) / len(others) if others else None
    ok = gap > 0 and returned >= RETURNED_SHARE * gap and (mean_other is None or returned > mean_other)
    spread = "" if not others else (f"; as many other heads: {mean_other:+.3f} (mean of {len(others)} sets, "
                                    f"{min(others):+.3f} to {max(others):+.3f})")
    share = f"{returned / gap:.0%} of it" if gap > 0 else "no gap to give back"
    return Claim(6, PAPER[6], f"{name}: ablating {a['induction_heads']} raises the ICL score by "
                 f"{returned:+.3f} (from {a['clean_icl_score']:+.3f}); 1L - {name} gap {gap:+.3f}: "
                 f"{share}{spread}", ok,
                 f"gives back >= {RETURNED_SHARE:.0%} of the 1L - {name} gap, and more than the mean of "
                 "as many other heads")


def claim_7(results, name="2L") -> Claim:
    m, one = results["models"].get(name), results["models"].get("1L")
    if m is None or m["phase_change_step"] is None or one is None:
        return _missing(7, f"a phase change of {name}")
    turn, control = m["pca_turn_degrees"], m["pca_turn_degrees_1L_same_steps"]
    ok = turn >= TURN_DEGREES and turn > control
    return Claim(7, PAPER[7], f"{name} turns by {turn:.0f} degrees across its phase change; 1L over the "
                 f"same steps {control:.0f}", ok,
                 f"a turn >= {TURN_DEGREES:g} degrees, larger than 1L's over the same steps")


def all_claims(results) -> list[Claim]:
    """Every claim on the main seed, then claims 2, 3, 4, 6 on the second seed's 2-layer model."""
    claims = [claim_1(results), claim_2(results), claim_3(results), claim_4(results), claim_5(results),
              claim_6(results), claim_7(results)]
    second = results.get("second_seed_model")
    if second and second in results["models"]:
        claims += [claim_2(results, second), claim_3(results, second), claim_4(results, second),
                   claim_6(results, "ablation_second_seed", second)]
    return claims
