"""Paper experiments: `python -m tinyinduction reproduce NAME`.

Each experiment is a module of this package with
    NAME     the command's name
    SUMMARY  one line for the command's help
    run(ctx: base.Context) -> dict      trains what it needs (through ctx.train_runs, i.e.
                                        the sweep runner), analyses, draws its figures
                                        (ctx.figure_path), returns results.json's content
    table(results) -> list[base.Row]    our numbers next to the paper's
    OPTIONS  which of "seed", "features", "text" it uses (default ("seed",)); any other
             is refused, not ignored
    check(ctx)   optional: refuse what run(ctx) could not use, before anything is written
and, for the results page (`reproduce all`, report.py's docstring says more):
    TITLE, FIGURES = {stem: caption}, report(results) -> str   (every number from results)
    headline(results) -> list[base.Row]                        (optional)
base.run_experiment does the rest: checks, output directory, results.json (strict JSON, with
the wall time, machine, load and commit), the printed table, --json. Figures take
ctx.figure_note into their titles.
"""
EXPERIMENTS = {
    "heads": "Singh et al. findings 1-4, 7: head roles, ablations, redundancy, wiring, direct path",
    "race": "Singh et al. finding 2: each layer-1 head trained alone, and all together",
    "toy": "the toy three-subcircuit model: clamping removes factors; fitted to the network's drop",
    "subcircuits": "Singh et al. Fig. 5b: clamping subcircuits A, B, C through training",
    "data": "Singh et al. Fig. 6: classes and labels act through different subcircuits",
    "seeds": "Singh et al. finding 8: seeds 5-9, induction strength vs accuracy and timing",
    "strength": "Singh et al. finding 8: training with the match clamped at strength s",
    "features": "the built-in stand-in features: which properties move the phase change",
    "olsson": "Olsson et al. 2022 on Python source: 1 vs 2 layers, smeared key, ICL score, PCA",
}
