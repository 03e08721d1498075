"""`reproduce features`: which properties of the exemplar features move the phase change.

The paper's exemplars are ResNet18 features of Omniglot; ours are stand-ins
(tasks/features.py: a generated table; tasks/glyphs.py: rendered characters through a
random CNN). This experiment trains the paper's setting (seed 5) on a sweep of the
generator's settings, one group of knobs moved at a time from the recipe used before
this sweep (OLD_RECIPE), and on the glyph table, and reports for each table

- its statistics: feature_statistics and class_geometry of the raw table, and
  class_geometry after the network's exemplar embedding at initialisation
  (LayerNorm(x W + b), what layer 0 actually sees), plus the embedding's scale (mean
  norm of x W + b over that of a label embedding);
- the run: learning time (first evaluation with train loss < 0.4 ln 2), plateau level,
  final relabel / held-out-class / other-exemplar losses;
- the Spearman rank correlation of every statistic with the learning time and with
  the final held-out-class loss over the sweep (descriptive: a dozen points);

and the figures features_sweep.png (what predicts the timing and the generalisation)
and glyphs.png (the glyph images: a few classes x 5 renderings). The glyph table is
trained twice: at the random network's own scale, and rescaled to the built-in table's
mean norm.

--quick: the quick setting (setups.py: small network, 10 classes, 1,500 steps) on a
few recipes, no glyph table; its numbers are never compared with the paper's.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from ..config import ModelConfig
from ..model import init_params
from ..phases import PAPER_THRESHOLD, describe_history
from ..sweep import RunSpec
from ..tasks.features import class_geometry, feature_statistics
from .base import PAPER_SEED, Row, format_value
from .report import fixed
from .setups import setting, task_of

NAME = "features"
SUMMARY = "the built-in stand-in features: which properties move the phase change"
OPTIONS = ("seed",)

# Singh et al. 2024, seed 5, Omniglot/ResNet18 features (shared/research/singh2024.md)
PAPER = {"learning_time": (5_600, 11_000), "plateau": 0.72, "heldout_classes": 0.12,
         "relabel": 0.03}
# What the built-in defaults were chosen to reach on seed 5 (the paper's numbers, loosened).
TARGET = {"learning_time": (5_600, 11_000), "plateau": (0.67, 0.77), "heldout_classes": 0.2,
          "relabel": 0.06}

KNOBS = ("rank", "mean_offset", "mean_scale", "latent_scale", "class_scale", "exemplar_scale")
# The generator's defaults before this sweep (learning time 18,000 on seed 5).
OLD_RECIPE = {"rank": 16, "mean_offset": 0.0, "mean_scale": 1.0, "latent_scale": 0.6,
              "class_scale": 0.6, "exemplar_scale": 0.4}
# The recipe this sweep chose: builtin_features' defaults (a test checks they agree).
CHOSEN = {**OLD_RECIPE, "mean_scale": 2.0, "latent_scale": 3.0, "rank": 8}

# (name, changes from OLD_RECIPE): one knob at a time, then combinations. Names are
# run directories; the point whose recipe equals CHOSEN is the chosen one.
SWEEP = (
    ("old", {}),
    ("mean_scale=0.5", {"mean_scale": 0.5}),
    ("mean_scale=2", {"mean_scale": 2.0}),
    ("class_scale=0.3", {"class_scale": 0.3}),
    ("all_scales_x2", {"mean_scale": 2.0, "latent_scale": 1.2, "class_scale": 1.2,
                       "exemplar_scale": 0.8}),          # = the whole table x 2 (ReLU is homogeneous)
    ("rank=4", {"rank": 4}),
    ("latent_scale=1.2", {"latent_scale": 1.2}),
    ("latent_scale=2", {"latent_scale": 2.0}),
    ("latent_scale=3", {"latent_scale": 3.0}),
    ("latent_scale=1.2,rank=4", {"latent_scale": 1.2, "rank": 4}),
    ("latent_scale=2,rank=4", {"latent_scale": 2.0, "rank": 4}),
    ("latent_scale=2,rank=8", {"latent_scale": 2.0, "rank": 8}),
    ("latent_scale=2,rank=32", {"latent_scale": 2.0, "rank": 32}),
    ("latent_scale=2,class_scale=0.3", {"latent_scale": 2.0, "class_scale": 0.3}),
    ("latent_scale=2.5,rank=8", {"latent_scale": 2.5, "rank": 8}),
    ("latent_scale=3,rank=8", {"latent_scale": 3.0, "rank": 8}),
    ("latent_scale=3,rank=8,mean_scale=1.5", {"latent_scale": 3.0, "rank": 8, "mean_scale": 1.5}),
    ("latent_scale=3,rank=8,mean_scale=2", {"latent_scale": 3.0, "rank": 8, "mean_scale": 2.0}),
)
# The glyph table as the network makes it, and rescaled to the chosen built-in table's
# mean norm (58.9): the random network's own scale is arbitrary.
GLYPH_POINTS = (("glyphs", "glyphs"), ("glyphs,mean_norm=59", "glyphs:mean_norm=59"))

# The quick setting: the low-rank part's strength, from none to the chosen recipe.
QUICK_SWEEP = (
    ("old", {}),
    ("latent_scale=0", {"latent_scale": 0.0}),
    ("latent_scale=2,rank=8", {"latent_scale": 2.0, "rank": 8}),
)


def recipe_source(recipe: dict) -> str:
    """The TaskConfig.features value of a generator recipe, every knob spelled out (so a
    later change of the defaults never changes what a sweep point trains on)."""
    return "builtin:" + ":".join(f"{k}={recipe[k]!r}" for k in KNOBS)


# --------------------------------------------------------------------------- statistics
def embedded(table: np.ndarray, model: ModelConfig, seed: int) -> tuple[np.ndarray, float]:
    """(LayerNorm(x W + b) [N, E, D] at initialisation, mean |x W + b| / mean |label emb|).

    What layer 0 sees of each exemplar when training starts (gain 1, bias 0 at init).
    """
    params = init_params(model, seed)
    weight = params["embed.W_exemplar"].astype(np.float64)                 # [F, D]
    hidden = table.astype(np.float64) @ weight + params["embed.b_exemplar"]  # [N, E, D]
    label_norm = np.linalg.norm(params["embed.W_label"], axis=1).mean()
    scale = float(np.linalg.norm(hidden, axis=-1).mean() / label_norm)
    centred = hidden - hidden.mean(axis=-1, keepdims=True)
    normed = centred / np.sqrt((centred ** 2).mean(axis=-1, keepdims=True) + 1e-5)
    return normed.astype(np.float32), scale


def describe_table(table: np.ndarray, model: ModelConfig, seed: int, n_train: int,
                   n_heldout: int) -> dict:
    """Raw statistics, class geometry, and class geometry after the embedding."""
    stats = {k: v for k, v in feature_statistics(table).items() if k != "shape"}
    stats.update(class_geometry(table, n_train, n_heldout))
    used = table[:n_train + n_heldout]
    after, scale = embedded(used, model, seed)
    stats.update({f"embedded_{k}": v for k, v in class_geometry(after, n_train, n_heldout).items()})
    stats["embedding_scale"] = scale
    return stats


def spearman(x, y) -> float | None:
    """Rank correlation of two equal-length sequences (None if either is constant)."""
    from scipy.stats import spearmanr
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    if keep.sum() < 3 or np.ptp(x[keep]) == 0 or np.ptp(y[keep]) == 0:
        return None
    return float(spearmanr(x[keep], y[keep])[0])


# --------------------------------------------------------------------------- runs
def specs(ctx) -> list[tuple[RunSpec, dict | None]]:
    """(run spec, generator recipe or None for the glyph table) of every sweep point."""
    model, task, train = setting(ctx.quick, ctx.seed)
    points = []
    for name, changes in (QUICK_SWEEP if ctx.quick else SWEEP):
        recipe = {**OLD_RECIPE, **changes}
        point_task = dataclasses.replace(task, features=recipe_source(recipe))
        points.append((RunSpec(name, model, point_task, train), recipe))
    if not ctx.quick:
        for name, source in GLYPH_POINTS:
            points.append((RunSpec(name, model, dataclasses.replace(task, features=source),
                                   train), None))
    return points


def summarise_run(summary, history) -> dict:
    with warnings.catch_warnings():   # a curve with no flat stretch: plateau level NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        phase = describe_history(history, loss_key="eval/train/loss", threshold=PAPER_THRESHOLD,
                                 interpolate=False)
    final = summary.final
    return {"learning_time": summary.learning_time, "plateau": phase.plateau_level,
            "steps": summary.steps, "status": summary.status,
            **{name: final.get(f"eval/{name}/loss") for name in
               ("train", "relabel", "heldout_classes", "other_exemplars")},
            "accuracy": {name: final.get(f"eval/{name}/acc") for name in
                         ("train", "relabel", "heldout_classes", "other_exemplars")}}


def meets_target(point: dict) -> dict:
    lo, hi = TARGET["learning_time"]
    t = point["learning_time"]
    return {"learning_time": t is not None and lo <= t <= hi,
            "plateau": TARGET["plateau"][0] <= point["plateau"] <= TARGET["plateau"][1],
            "heldout_classes": point["heldout_classes"] <= TARGET["heldout_classes"],
            "relabel": point["relabel"] <= TARGET["relabel"]}


def run(ctx) -> dict:
    points = specs(ctx)
    summaries = ctx.train_runs([spec for spec, _ in points])
    results = {"target": TARGET, "paper": PAPER, "old_recipe": OLD_RECIPE, "chosen": CHOSEN,
               "knobs": list(KNOBS), "points": {}}
    curves = {}
    for spec, recipe in points:
        summary = summaries[spec.name]
        history = summary.history()
        task = task_of(spec.task)
        point = summarise_run(summary, history)
        point["recipe"] = recipe
        point["features"] = spec.task.features
        point["statistics"] = describe_table(task.features, spec.model, ctx.seed,
                                             task.n_train_classes, task.n_heldout_classes)
        point["meets_target"] = meets_target(point)
        results["points"][spec.name] = point
        curves[spec.name] = (history["step"], history["eval/train/loss"],
                             history["eval/heldout_classes/loss"])
    swept = {n: p for n, p in results["points"].items() if p["recipe"] is not None}
    results["chosen_point"] = next((n for n, p in swept.items() if p["recipe"] == CHOSEN), None)
    names = list(next(iter(swept.values()))["statistics"])
    # A run that never crossed counts as its length (censored): later than any that did.
    times = [p["learning_time"] if p["learning_time"] is not None else p["steps"] + 1
             for p in swept.values()]
    held = [p["heldout_classes"] for p in swept.values()]
    results["correlation"] = {
        stat: {"learning_time": spearman([p["statistics"][stat] for p in swept.values()], times),
               "heldout_classes": spearman([p["statistics"][stat] for p in swept.values()], held)}
        for stat in names}
    from . import features_plots as plots
    suffix = "_quick" if ctx.quick else ""
    plots.sweep_figure(ctx.figure_path(f"features_sweep{suffix}"), results, curves,
                       paper=not ctx.quick, seed=ctx.seed, note=ctx.figure_note)
    if not ctx.quick:
        plots.glyph_figure(ctx.figure_path("glyphs"))
    return results


def table(results) -> list[Row]:
    """Our numbers next to the paper's (paper: seed 5, Omniglot features), then the sweep."""
    points = results["points"]
    lo, hi = results["paper"]["learning_time"]
    paper = results["paper"]
    if results.get("meta", {}).get("quick"):     # the quick setting is never compared
        paper, lo = {k: "-" for k in paper}, None
    rows = []
    named = [(results.get("chosen_point"), "built-in, chosen recipe"),
             ("old", "built-in, recipe before the sweep"), ("glyphs", "glyph table"),
             ("glyphs,mean_norm=59", "glyph table at the built-in's scale")]
    for name, what in named:
        if name not in points:
            continue
        p = points[name]
        rows += [
            Row(f"{what}: learning time (steps)", p["learning_time"],
                "-" if lo is None else f"~{lo:,}-{hi:,}",
                "first evaluation with train loss < 0.4 ln 2"),
            Row(f"{what}: plateau loss", p["plateau"], paper["plateau"]),
            Row(f"{what}: relabel final loss", p["relabel"], paper["relabel"]),
            Row(f"{what}: held-out classes final loss", p["heldout_classes"],
                paper["heldout_classes"]),
        ]
    for name, p in points.items():
        if p["recipe"] is None:
            continue
        rows.append(Row(f"sweep {name}: learning time, held-out, relabel, plateau",
                        [p["learning_time"], p["heldout_classes"], p["relabel"], p["plateau"]],
                        "-", "meets all targets" if all(p["meets_target"].values()) else ""))
    best = sorted(((abs(c["learning_time"]), s, c["learning_time"])
                   for s, c in results["correlation"].items() if c["learning_time"] is not None),
                  reverse=True)[:3]
    for _, stat, rho in best:
        rows.append(Row(f"rank correlation with learning time: {stat}", rho, "-",
                        "over the sweep of the generator's settings"))
    return rows


# ---------------------------------------------------------------- the results page (report.py)

TITLE = "The stand-in features"
FIGURES = {
    "features_sweep": "Left: the seed-5 loss curves. Middle and right: learning time against the "
                      "effective rank, and held-out-class loss against the held-out classes' share "
                      "in the training span, one point per table.",
    "glyphs": "The first 8 classes of the glyph table and their 5 renderings (exemplar 0 is the "
              "one training uses).",
}
GLYPH_NAMES = {"glyphs": "glyphs", "glyphs,mean_norm=59": "glyphs at the built-in's scale"}


def _with_acc(point, name) -> str:
    acc = point.get("accuracy", {}).get(name)
    return format_value(point[name]) + ("" if acc is None else f" (accuracy {fixed(acc, '.3f')})")


def _bold(text, met) -> str:
    return f"**{text}**" if met else text


def _sweep_table(results) -> str:
    """Every swept table; bold: a target met (at the paper's setting only)."""
    quick = results.get("meta", {}).get("quick")
    rows = ["| setting (changes from the recipe before the sweep) | effective rank | held-out in "
            "training span | learning time (steps) | held-out classes final loss | relabel final "
            "loss | plateau |", "|---|---|---|---|---|---|---|"]
    for name, p in results["points"].items():
        stats = p["statistics"]
        met = {k: v and not quick for k, v in p["meets_target"].items()}
        label = "none (recipe before the sweep)" if name == "old" else f"`{name}`"
        if name == results.get("chosen_point"):
            label += " **(chosen)**"
        if p["recipe"] is None:
            label += " (glyph table, not in the correlations)"
        cells = [label, fixed(stats["effective_rank"], ".1f"), fixed(stats["heldout_in_train_span"], ".2f"),
                 _bold(format_value(p["learning_time"]), met["learning_time"]),
                 _bold(fixed(p["heldout_classes"]), met["heldout_classes"]),
                 _bold(fixed(p["relabel"]), met["relabel"]), _bold(fixed(p["plateau"]), met["plateau"])]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _rho(results, stat, against="learning_time") -> str:
    value = results["correlation"].get(stat, {}).get(against)
    return fixed(value, "+.2f")


def _shared_mean(points) -> str:
    """Halving and doubling the shared mean (the paper's sweep has both points)."""
    moved = [(n, points[n]) for n in ("mean_scale=0.5", "mean_scale=2") if n in points]
    if len(moved) < 2:
        return ""
    return (" Halving or doubling the shared mean (between-class cosine "
            + " or ".join(fixed(p["statistics"]["between_class_cosine"], ".2f") for _, p in moved)
            + f", {fixed(points['old']['statistics']['between_class_cosine'], '.2f')} before) moves the "
            f"drop from {format_value(points['old']['learning_time'])} to "
            + " or ".join(format_value(p["learning_time"]) for _, p in moved) + " steps.")


def _relabel(results) -> str:
    """Relabel: does the earliest drop also generalise to new label pairs?"""
    swept = {n: p for n, p in results["points"].items()
             if p["recipe"] is not None and p["learning_time"] is not None}
    if not swept:
        return ""
    first = min(swept, key=lambda n: swept[n]["learning_time"])
    met = [n for n, p in swept.items() if p["meets_target"]["relabel"]]
    return (f"- **Relabel**: the table that drops earliest (`{first}`, step "
            f"{format_value(swept[first]['learning_time'])}) ends at relabel loss "
            f"{fixed(swept[first]['relabel'])}; relabel <= {results['target']['relabel']} on "
            + (", ".join(f"`{n}`" for n in met) if met else "no table") + ".")


def report(results) -> str:
    points, paper, target = results["points"], results["paper"], results["target"]
    quick = results.get("meta", {}).get("quick")
    chosen = points.get(results.get("chosen_point"))
    old = points["old"]
    swept = {n: p for n, p in points.items() if p["recipe"] is not None}
    times = [p["learning_time"] for p in swept.values() if p["learning_time"] is not None]
    lines = [
        "The paper's exemplars are ResNet18 features of Omniglot images, which cannot be "
        "downloaded here: our tables are stand-ins ([the few-shot task and its stand-in features]"
        "(tinyinduction/README.md#the-few-shot-task-and-its-stand-in-features)). This experiment "
        f"trains the seed-{results['meta']['seed']} run on each table of a sweep of the generator's "
        "settings, one group of knobs moved at a time from the recipe used before the sweep, "
        + ("and on the glyph table (rendered characters), " if "glyphs" in points else "")
        + "measures each table, and correlates its statistics with the run.", ""]
    if chosen is not None:
        lines += [
            f"The chosen recipe's run (seed {results['meta']['seed']}"
            + ("; the demo's run, `python -m tinyinduction demo`: the paper's setting, seed 5, the "
               "built-in table" if results["meta"]["seed"] == PAPER_SEED else "")
            + "), next to the paper's and to the recipe before the tuning:", "",
            "| | built-in table, chosen recipe | Singh et al. 2024 (seed 5, Omniglot features) | "
            "recipe before the tuning |", "|---|---|---|---|",
            f"| plateau loss | {fixed(chosen['plateau'], '.3f')} | ~{paper['plateau']} | {fixed(old['plateau'], '.3f')} |",
            f"| phase change: first evaluation with train loss < 0.4 ln 2 (steps) | "
            f"{format_value(chosen['learning_time'])} | ~{paper['learning_time'][0]:,}-"
            f"{paper['learning_time'][1]:,} | {format_value(old['learning_time'])} |",
            f"| final train loss | {_with_acc(chosen, 'train')} | ~0 | {_with_acc(old, 'train')} |",
            f"| relabel (held-out label pairs), final loss | {_with_acc(chosen, 'relabel')} | "
            f"~{paper['relabel']} | {_with_acc(old, 'relabel')} |",
            f"| held-out classes, final loss | {_with_acc(chosen, 'heldout_classes')} | "
            f"~{paper['heldout_classes']} | {_with_acc(old, 'heldout_classes')} |",
            f"| other exemplars, final loss | {_with_acc(chosen, 'other_exemplars')} | not reported | "
            f"{_with_acc(old, 'other_exemplars')} |", "",
            "The phenomenon is the paper's: a plateau near ln 2, an abrupt drop, and relabel loss "
            "above ln 2 on the plateau (those label pairs never appear together in training) that "
            "falls after the drop. **The timing and the final losses agree with the paper's because "
            "the built-in table was tuned on this very run to make them agree**; they are not an "
            "independent reproduction. On the swept tables the same run crossed between "
            + (f"{min(times):,} and {max(times):,} steps" if times else "-")
            + (f", and on rendered character images at {format_value(points['glyphs']['learning_time'])}"
               if "glyphs" in points else "") + ".", ""]
    o = old["statistics"]
    lines += [
        f"**How the settings were chosen.** Before this sweep the generator's recipe was "
        + ", ".join(f"`{k}={v:g}`" for k, v in results["old_recipe"].items())
        + f" (between-class cosine {fixed(o['between_class_cosine'], '.2f')}, within {fixed(o['within_class_cosine'], '.2f')}), "
        f"and the seed-{results['meta']['seed']} run crossed 0.4 ln 2 at step "
        f"{format_value(old['learning_time'])}, with held-out classes at {fixed(old['heldout_classes'], '.2f')}. "
        + ("" if quick else
           f"Targets, on seed 5 only: learning time {target['learning_time'][0]:,}-"
           f"{target['learning_time'][1]:,} steps, held-out classes <= {target['heldout_classes']}, "
           f"relabel <= {target['relabel']}, plateau in {target['plateau'][0]}-{target['plateau'][1]} "
           "(bold: met)."), "",
        _sweep_table(results), "",
        "*Effective rank*: participation ratio `(sum l)^2 / sum l^2` of the eigenvalues of the "
        "centred training-class vectors. *Held-out in training span*: the fraction of the held-out "
        "classes' centred variation that lies in the span of the training classes. Both from "
        "`tasks.features.class_geometry`.", ""]
    lines += [f"What the sweep shows (Spearman rank correlations over the {len(swept)} generated "
              "tables; all of them in `results.json`):",
              f"- **The effective rank of the classes and the timing**: rho = "
              f"{_rho(results, 'effective_rank')} with the learning time "
              f"({_rho(results, 'embedded_effective_rank')} after the network's exemplar embedding "
              "and LayerNorm at initialisation)."
              + (" A lower rank, an earlier drop: classes that differ along a few strong directions "
                 "give the query-key match a few large signals to grow on, as in the toy model, where "
                 "a larger target shortens the plateau."
                 if (results["correlation"].get("effective_rank", {}).get("learning_time") or 0) > 0.5
                 else "") + " Held-out classes that lie in the span of the "
              f"training classes: rho = {_rho(results, 'heldout_in_train_span')} with the learning "
              f"time, {_rho(results, 'heldout_in_train_span', 'heldout_classes')} with the held-out "
              "loss.",
              f"- **Scale after the embedding**: rho = {_rho(results, 'embedding_scale')} for the "
              "embedding's norm over a label embedding's."
              + (f" The whole table times 2 (`all_scales_x2`, same geometry) moves the drop from "
                 f"{format_value(old['learning_time'])} to "
                 f"{format_value(points['all_scales_x2']['learning_time'])} steps and relabel from "
                 f"{fixed(old['relabel'], '.3f')} to {fixed(points['all_scales_x2']['relabel'], '.3f')}."
                 if "all_scales_x2" in points else ""),
              f"- **The shared mean, the nearest class**: rho = {_rho(results, 'shared_fraction')} "
              f"for the shared fraction, {_rho(results, 'nearest_class_margin')} for the nearest-class "
              "margin." + _shared_mean(points), _relabel(results), ""]
    if chosen is not None:
        met_all = [n for n, p in swept.items() if all(p["meets_target"].values())]
        lines += [
            f"The chosen recipe (`{results.get('chosen_point')}`) "
            + ("meets all four targets" if all(chosen["meets_target"].values()) else
               "does not meet every target")
            + f"; {len(met_all)} of the {len(swept)} tables do. Its between-class cosine is "
            f"{fixed(chosen['statistics']['between_class_cosine'], '.2f')}, its within-class cosine "
            f"{fixed(chosen['statistics']['within_class_cosine'], '.2f')}: the exemplars of one class are "
            "nearly identical, so the \"other exemplars\" evaluation is easier than it would be on "
            "Omniglot. The same seed with other initialisations will not land in the paper's "
            "window every time: this is a tuning on one run.", ""]
    if "glyphs" in points:
        g = points["glyphs"]["statistics"]
        lines += [
            "**A table of real images: glyphs** ([how it is made](tinyinduction/README.md"
            "#the-few-shot-task-and-its-stand-in-features)). Its statistics are not the generated "
            f"table's: between-class cosine {fixed(g['between_class_cosine'], '.2f')} (the random network's "
            f"features share much more), within-class {fixed(g['within_class_cosine'], '.2f')}, "
            f"{fixed(g['fraction_zeros'], '.0%')} zeros, mean norm {fixed(g['mean_norm'], '.1f')}, effective rank "
            f"{fixed(g['effective_rank'], '.1f')}. The seed-{results['meta']['seed']} run on it"
            + (" (the same run as `python -m tinyinduction demo --features glyphs --out "
               "runs/demo_glyphs --figure figures/demo_glyphs.png`)"
               if results["meta"]["seed"] == PAPER_SEED else "") + ":", "",
            f"| seed {results['meta']['seed']}, paper setting | built-in (tuned) | "
            + " | ".join(f"{GLYPH_NAMES[n]} (`{points[n]['features']}`)" for n in GLYPH_NAMES if n in points)
            + " | Singh et al. 2024 (Omniglot) |",
            "|---|---|" + "---|" * sum(n in points for n in GLYPH_NAMES) + "---|"]
        shown = [chosen] + [points[n] for n in GLYPH_NAMES if n in points]
        for label, key, paper_value in (
                ("learning time (steps)", "learning_time",
                 f"~{paper['learning_time'][0]:,}-{paper['learning_time'][1]:,}"),
                ("plateau loss", "plateau", f"~{paper['plateau']}"),
                ("relabel, final loss", "relabel", f"~{paper['relabel']}"),
                ("held-out classes, final loss", "heldout_classes", f"~{paper['heldout_classes']}"),
                ("other exemplars, final loss", "other_exemplars", "not reported")):
            cells = [format_value(p[key]) if key == "learning_time" else fixed(p[key]) for p in shown]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {paper_value} |")
        lines += [
            "", "Nothing was tuned on the glyph table. Its own scale (the random network's, an "
            "arbitrary consequence of its initialisation) and the same images rescaled to the "
            "built-in table's mean norm test the sweep's finding that the geometry and the scale "
            "set the timing. Its \"other exemplars\" loss shows whether the random network sees two "
            "renderings of one character as closer than the nearest other character (mean "
            f"nearest-class margin {fixed(g['nearest_class_margin'], '+.2f')}; a network trained on images "
            "would).", "",
            "The glyph run's circuit is not laid out like the built-in run's (the bottom rows of "
            "`figures/demo_glyphs.png`, drawn by `python -m tinyinduction demo --features glyphs "
            "--out runs/demo_glyphs --figure figures/demo_glyphs.png`): when the query matches the "
            "first pair, layer 1 at `xq` attends mostly to `x2`, where layer-0 heads have gathered "
            "both `x1` and `l1`, so `x2` offers the key to match and the label to copy; when it "
            "matches the second pair, layer 1 attends to `l2`, the usual layout. An induction "
            "circuit all the same, using position `x2` as its store; seen in the patterns, not "
            "tested with clamps."]
    return "\n".join(lines)


def headline(results) -> list[Row]:
    chosen = results["points"].get(results.get("chosen_point"))
    if chosen is None:
        return []
    paper = results["paper"]
    if results.get("meta", {}).get("quick"):
        paper = {k: "-" for k in paper} | {"learning_time": ("-", "-")}
    lo, hi = paper["learning_time"]
    return [
        Row("a plateau near ln 2, then an abrupt drop: plateau loss", chosen["plateau"],
            f"~{paper['plateau']}"),
        Row("the drop: first evaluation with train loss < 0.4 ln 2 (steps)", chosen["learning_time"],
            f"~{lo:,}-{hi:,}" if isinstance(lo, int) else "-"),
        Row("relabel (held-out label pairs), final loss", chosen["relabel"], f"~{paper['relabel']}"),
        Row("held-out classes, final loss", chosen["heldout_classes"], f"~{paper['heldout_classes']}"),
    ]
