"""Command line: python -m tinyinduction {demo, train, bench, toy} ...

    demo    the paper's network for the paper's 31,250 steps, a figure and a summary
    train   a training run that writes config.json, history.json and checkpoints
    bench   milliseconds per training step (forward, backward, Adam)
    toy     the three-subcircuit toy model (see tinyinduction/toy.py)
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from .config import PRESETS, preset
from .train import TrainingDiverged

def _train_configs(args):
    model, task, train = preset(args.preset)
    changes = {k: v for k, v in (("seed", args.seed), ("steps", args.steps), ("lr", args.lr),
                                 ("batch_size", args.batch_size), ("eval_every", args.eval_every),
                                 ("checkpoint_every", args.checkpoint_every),
                                 ("log_every", args.log_every)) if v is not None}
    train = train.replace(**changes)
    if args.features is not None:
        task = dataclasses.replace(task, features=args.features)
    return model, task, train


def _add_run_options(parser, default_seed=None):
    parser.add_argument("--preset", choices=PRESETS, default="paper")
    parser.add_argument("--seed", type=int, default=default_seed, help="init and data seed")
    parser.add_argument("--steps", type=int, help="training steps (batch of 32 each by default)")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--eval-every", type=int, help="steps between evaluations")
    parser.add_argument("--checkpoint-every", type=int)
    parser.add_argument("--log-every", type=int, help="steps between progress lines (0 = silent)")
    parser.add_argument("--features", help="a .npy feature table (classes, exemplars, dim) "
                                           "instead of the built-in stand-in")


def cmd_train(args) -> int:
    from .train import train
    model, task, train_config = _train_configs(args)
    print(f"training {args.preset}: {train_config.steps} steps, seed {train_config.seed}, "
          f"writing to {args.out}")
    started = time.perf_counter()
    result = train(model, task, train_config, out_dir=args.out, resume=args.resume)
    print(f"done in {time.perf_counter() - started:.1f} s; history in {Path(args.out) / 'history.json'}")
    return 130 if result.interrupted else 0


def cmd_demo(args) -> int:
    from .demo import run_demo
    model, task, train_config = _train_configs(args)
    suffix = "" if args.preset == "paper" else f"_{args.preset}"   # never overwrite the paper run
    out = Path(args.out or f"runs/demo{suffix}")
    figure = Path(args.figure or f"figures/demo{suffix}.png")
    return run_demo(model, task, train_config, out, figure, args.preset)


def cmd_bench(args) -> int:
    from .bench import bench_training_step
    model, task, train_config = preset(args.preset)
    result = bench_training_step(model, task, train_config, n_steps=args.repeats)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{args.preset} preset, batch {result['batch_size']}: median {result['ms_per_step']:.3f} ms "
              f"per training step (forward + backward + Adam; min {result['ms_min']:.3f}, "
              f"{result['repeats']} steps, batches sampled beforehand); the step's matrix "
              f"products alone: {result['ms_matmuls_only']:.3f} ms")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m tinyinduction",
                                     description="A NumPy-only laboratory for induction heads.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="paper preset, full run, figure and summary")
    _add_run_options(p, default_seed=5)
    p.add_argument("--out", help="run directory (default runs/demo, or runs/demo_<preset>)")
    p.add_argument("--figure", help="default figures/demo.png, or figures/demo_<preset>.png")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("train", help="train and write config.json, history.json, checkpoints/")
    _add_run_options(p)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", help="checkpoint to continue from")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("bench", help="milliseconds per training step")
    p.add_argument("--preset", choices=PRESETS, default="paper")
    p.add_argument("--repeats", type=int, default=500, help="timed steps (default 500)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("toy", help="the toy three-subcircuit model", add_help=False)
    p.set_defaults(func=None)
    return parser


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "toy":           # the toy model parses its own options
        from .toy import run_cli
        return run_cli(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except ValueError as error:              # bad input: one line, no traceback
        print(f"error: {error}", file=sys.stderr)
        return 2
    except TrainingDiverged as error:
        print(f"error: {error}", file=sys.stderr)
        return 3
