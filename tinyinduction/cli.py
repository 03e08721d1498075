"""Command line: python -m tinyinduction {demo, train, bench, toy} ...

    demo    the paper's network for the paper's 31,250 steps, a figure and a summary
    train   a training run that writes run.json, config.json, history.json and checkpoints
    bench   milliseconds per training step (forward, backward, Adam)
    toy     the three-subcircuit toy model (see tinyinduction/toy/)

Adding a command: write `_add_<name>(subparsers)` that registers a parser whose
defaults hold `func=cmd_<name>`, and append it to COMMANDS. cmd_<name>(args) returns an
exit code; whatever it raises goes through main's one error path:

    0    success
    1    the system failed: a file-system error (disk full, permission, missing file)
         or out of memory
    2    bad input: an invalid argument, config, path or feature file, or an output
         directory that holds another run (ValueError, TypeError, usage errors)
    3    training diverged (a non-finite loss, gradient, parameter or evaluation loss)
    4    an internal error (a bug: please report it; TINYINDUCTION_TRACEBACK=1 shows where)
    130  interrupted by Ctrl-C (SIGINT); the run was saved and can be resumed
    143  stopped by SIGTERM; the run was saved and can be resumed
         (reproduce, sweep: every running run saved, no results written; a command
         whose parser sets `resumable=True` says that the same command continues)

Every error is one line on stderr, `error: ...`, with no traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

from .presets import PRESETS, preset
from .runs import check_output_dir, check_output_file
from .sweep import GridStopped
from .train import TrainingDiverged

EXIT_OK, EXIT_SYSTEM, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_BUG = 0, 1, 2, 3, 4
EXIT_INTERRUPTED, EXIT_TERMINATED = 130, 143
FIGURE_TYPES = ("png", "pdf", "svg")


class UsageError(ValueError):
    """A command-line argument argparse refused."""


class Terminated(BaseException):
    """SIGTERM outside a training loop (inside one, training stops between steps)."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):            # one line through main, not usage + exit
        raise UsageError(f"{self.prog}: {message} (see --help)")


def interrupted_exit_code(result) -> int:
    """0 for a finished TrainResult, 130 after Ctrl-C, 143 after SIGTERM."""
    if not result.interrupted:
        return EXIT_OK
    return EXIT_TERMINATED if result.stopped_by == "SIGTERM" else EXIT_INTERRUPTED


# ---------------------------------------------------------------- train and demo


def _train_configs(args):
    """(model, task config, train config, task): the preset with the options applied, and
    the few-shot task built from it; d_feature follows the feature table (--features)."""
    from .tasks.fewshot import FewShotTask
    from .train import fit_model_to_task
    model, task_config, train_config = preset(args.preset)
    changes = {k: v for k, v in (("seed", args.seed), ("steps", args.steps), ("lr", args.lr),
                                 ("batch_size", args.batch_size), ("eval_every", args.eval_every),
                                 ("checkpoint_every", args.checkpoint_every),
                                 ("log_every", args.log_every)) if v is not None}
    train_config = train_config.replace(**changes)
    if args.features is not None:
        task_config = dataclasses.replace(task_config, features=args.features)
    task = FewShotTask(task_config)
    return fit_model_to_task(model, task), task_config, train_config, task


def _add_run_options(parser, default_seed=None):
    parser.add_argument("--preset", choices=PRESETS, default="paper")
    parser.add_argument("--seed", type=int, default=default_seed, help="init and data seed")
    parser.add_argument("--steps", type=int, help="training steps (batch of 32 each by default)")
    parser.add_argument("--lr", type=float)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--eval-every", type=int, help="steps between evaluations")
    parser.add_argument("--checkpoint-every", type=int)
    parser.add_argument("--log-every", type=int, help="steps between progress lines (0 = silent)")
    parser.add_argument("--features", help="exemplar features: builtin (the generated stand-in, "
                                           "default), glyphs (rendered characters, built once "
                                           "and cached), builtin:KNOB=VALUE:... (generator "
                                           "settings), or a .npy table (classes, exemplars, "
                                           "dim); any dim")
    parser.add_argument("--overwrite", action="store_true",
                        help="move a run already in the output directory aside (to <dir>.old) "
                             "and start again; nothing is deleted")
    parser.add_argument("--eval-here", action="store_true",
                        help="evaluate in the training process (default: in a second process, "
                             "overlapping training, on Linux with a second CPU)")


def _clamps_from_options(args, model, announce=True):
    """Passes built from --clamp KIND[:field=value,...] and --only-head LAYER:HEAD (the
    grammar of subcircuits.parse_clamp_option); () without them."""
    from .subcircuits import build_clamps, parse_clamp_option, parse_only_head_option
    specs = [parse_clamp_option(text) for text in args.clamp or []]
    specs += [parse_only_head_option(text) for text in args.only_head or []]
    if specs:
        clamps = build_clamps(specs, model)
        if announce:
            print(f"clamps: {clamps}")
        return clamps
    return ()


def cmd_train(args) -> int:
    from .train import train
    out = check_output_dir(args.out, "--out")
    model, task_config, train_config, task = _train_configs(args)
    print(f"training {args.preset}: {train_config.steps} steps, seed {train_config.seed}, "
          f"writing to {out}")
    started = time.perf_counter()
    resume = args.resume
    if resume is not None and resume != "auto":
        resume = Path(resume)
    clamps = _clamps_from_options(args, model)
    result = train(model, task_config, train_config, out_dir=out, resume=resume, task=task,
                   overwrite=args.overwrite, clamps=clamps,
                   evaluate_in_background=not args.eval_here)
    if not result.interrupted:
        print(f"done in {time.perf_counter() - started:.1f} s; history in {out / 'history.json'}")
    return interrupted_exit_code(result)


def cmd_demo(args) -> int:
    from .demo import run_demo
    suffix = "" if args.preset == "paper" else f"_{args.preset}"   # never mix presets
    out = check_output_dir(args.out if args.out is not None else f"runs/demo{suffix}", "--out")
    figure = check_output_file(args.figure if args.figure is not None else f"figures/demo{suffix}.png",
                               "--figure", FIGURE_TYPES)
    model, task_config, train_config, task = _train_configs(args)
    result = run_demo(model, task_config, train_config, out, figure, args.preset, task=task,
                      overwrite=args.overwrite, evaluate_in_background=not args.eval_here)
    return interrupted_exit_code(result)


def cmd_bench(args) -> int:
    from .bench import TEXT_DEFAULTS, bench_training_step, text_setting
    if args.preset == "text":
        model, task, train_config = text_setting(
            *(TEXT_DEFAULTS[k] if v is None else v for k, v in (
                ("d_vocab", args.d_vocab), ("n_ctx", args.n_ctx), ("batch_size", args.batch_size))))
        setting = f"text setting (d_vocab {model.d_vocab}, context {model.n_ctx})"
    else:
        from .tasks.fewshot import FewShotTask
        if args.d_vocab is not None or args.n_ctx is not None:
            raise ValueError("--d-vocab and --n-ctx belong to --preset text")
        model, task_config, train_config = preset(args.preset)
        if args.batch_size is not None:
            train_config = train_config.replace(batch_size=args.batch_size)
        task, setting = FewShotTask(task_config), f"{args.preset} preset"
    if args.condition:
        return _bench_conditions(args, model, task, train_config, setting)
    clamps = _clamps_from_options(args, model, announce=False)
    if clamps:
        return _bench_clamped(args, model, task, train_config, clamps, setting)
    result = bench_training_step(model, task, train_config, n_steps=args.repeats)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"{setting}, batch {result['batch_size']}: median {result['ms_per_step']:.3f} ms "
              f"per training step (forward + backward + Adam; min {result['ms_min']:.3f}, "
              f"mean {result['ms_mean']:.3f}, "
              f"{result['repeats']} steps, batches sampled beforehand)\n"
              f"  medians: forward {result['ms_forward']:.3f} ms, backward (loss and gradients) "
              f"{result['ms_backward']:.3f} ms, Adam (with flattening the gradients) "
              f"{result['ms_adam']:.3f} ms\n"
              f"  floor: the step's matrix products alone, back to back: "
              f"{result['ms_matmuls_only']:.3f} ms")
    return EXIT_OK


def _bench_clamped(args, model, task, train_config, clamps, setting) -> int:
    from .bench import BLOCK_STEPS, bench_clamped_step
    result = bench_clamped_step(model, task, train_config, clamps, n_steps=args.repeats)
    if args.json:
        print(json.dumps(result))
        return EXIT_OK
    print(f"{setting}, batch {result['batch_size']}, clamps: {result['clamps']}\n"
          f"  training step: clamped {result['ms_per_step']:.3f} ms, plain "
          f"{result['plain_ms_per_step']:.3f} ms: {result['ratio']:.2f}x (medians of "
          f"{result['repeats']} steps each, the two alternating in blocks of {BLOCK_STEPS})")
    if result["eval_ms"] is not None:
        print(f"  evaluation ({result['eval_sequences']:,} sequences): clamped {result['eval_ms']:.1f} ms, "
              f"plain {result['plain_eval_ms']:.1f} ms: {result['eval_ratio']:.2f}x (medians of "
              f"{result['n_evals']} each, alternating)")
    print(f"  load average {result['load_average']:.1f} (ratios survive a busy machine better "
          f"than times; see the reference manual's Speed section)")
    return EXIT_OK


def _bench_conditions(args, model, task, train_config, setting) -> int:
    """bench --condition: Singh et al.'s named clamp conditions, each against the plain step."""
    from .bench import bench_clamped_step
    from .subcircuits import CONDITIONS, build_clamps, condition_specs
    if args.clamp or args.only_head:
        raise ValueError("--condition names its own clamps: give --clamp/--only-head or --condition")
    if model.input_kind != "fewshot":
        raise ValueError("--condition needs a few-shot preset (the conditions clamp label logits)")
    names = CONDITIONS if "all" in args.condition else tuple(args.condition)
    rows = []
    # the paper's heads (their induction head 3, previous-token head 2), or the last ones
    heads = dict(induction_head=min(3, model.n_heads - 1), previous_token_head=min(2, model.n_heads - 1))
    for name in names:
        clamps = build_clamps(condition_specs(name, **heads), model)
        result = bench_clamped_step(model, task, train_config, clamps, n_steps=args.repeats)
        rows.append({"condition": name, **result})
        if not args.json:
            if len(rows) == 1:
                print(f"{setting}, batch {result['batch_size']}: clamped / plain, each timed "
                      f"interleaved with the plain one (medians)\n"
                      f"| condition | step | plain step | ratio | evaluation | plain evaluation | ratio |\n"
                      f"|---|---|---|---|---|---|---|")
            print(f"| {name} | {result['ms_per_step']:.3f} ms | {result['plain_ms_per_step']:.3f} ms | "
                  f"**{result['ratio']:.2f}** | {result['eval_ms']:.1f} ms | {result['plain_eval_ms']:.1f} ms | "
                  f"**{result['eval_ratio']:.2f}** |", flush=True)
    if args.json:
        print(json.dumps(rows))
    else:
        print(f"load average {rows[-1]['load_average']:.1f}; {rows[-1]['repeats']} steps and "
              f"{rows[-1]['n_evals']} evaluations of each")
    return EXIT_OK


def cmd_toy(args) -> int:
    from .toy import run_cli
    return run_cli(args.toy_args)


# ---------------------------------------------------------------- the parser


def _add_demo(sub):
    p = sub.add_parser("demo", help="paper preset, full run, figure and summary")
    _add_run_options(p, default_seed=5)
    p.add_argument("--out", help="run directory (default runs/demo, or runs/demo_<preset>); "
                                 "a finished demo there is reused, an interrupted one continued")
    p.add_argument("--figure", help="default figures/demo.png, or figures/demo_<preset>.png")
    p.set_defaults(func=cmd_demo)


def _add_train(sub):
    p = sub.add_parser("train", help="train and write run.json, history.json, checkpoints/")
    _add_run_options(p)
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", help="a checkpoint to continue from, or 'auto': continue the "
                                    "run in --out (or reuse it if finished, or start it)")
    p.add_argument("--clamp", action="append", metavar="KIND[:FIELD=VALUE,...]",
                   help="clamp a subcircuit all through training (repeatable): A (layer-0 "
                        "perfect), match:head=3,s=0.8 (B), copy:head=3 (C), prev_token:head=2,p=1, "
                        "ablate:layer=1,head=5; layer defaults 0 for prev_token, 1 otherwise")
    p.add_argument("--only-head", action="append", metavar="LAYER:HEAD",
                   help="ablate (zero the values of) every other head of that layer, e.g. 1:3")
    p.set_defaults(func=cmd_train)


def _add_bench(sub):
    p = sub.add_parser("bench", help="milliseconds per training step")
    p.add_argument("--preset", choices=PRESETS + ("text",), default="paper",
                   help="a few-shot preset, or text: the Olsson experiment's 2-layer text model "
                        "on random tokens")
    p.add_argument("--d-vocab", type=int, help="text: vocabulary size (default 1024)")
    p.add_argument("--n-ctx", type=int, help="text: context length (default 64)")
    p.add_argument("--batch-size", type=int, help="sequences per step (default: the preset's; text 16)")
    p.add_argument("--clamp", action="append", metavar="KIND[:FIELD=VALUE,...]",
                   help="time this clamped step (and evaluation) against the plain one, interleaved; "
                        "the grammar of train --clamp (repeatable)")
    p.add_argument("--only-head", action="append", metavar="LAYER:HEAD",
                   help="with the clamps: ablate every other head of that layer, as train --only-head")
    p.add_argument("--condition", action="append", metavar="NAME",
                   choices=("all", "none", "PT", "A", "B", "C", "A+C"),
                   help="Singh et al.'s clamp conditions (subcircuits.condition_specs; 'all': the "
                        "six), each timed against the plain step: a table of ratios")
    p.add_argument("--repeats", type=int, default=500, help="timed steps (default 500)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=cmd_bench)


def _add_toy(sub):
    p = sub.add_parser("toy", help="the toy three-subcircuit model", add_help=False)
    p.add_argument("toy_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_toy)


def _add_experiments(sub):
    from .experiments.command import add_parsers   # reproduce, sweep
    add_parsers(sub)


COMMANDS = [_add_demo, _add_train, _add_bench, _add_toy, _add_experiments]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m tinyinduction",
                     description="A NumPy-only laboratory for induction heads.",
                     epilog="exit codes: 0 ok, 1 system (disk, memory), 2 bad input, 3 diverged, "
                            "4 internal error, 130 Ctrl-C, 143 SIGTERM")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in COMMANDS:
        add(sub)
    return parser


# ---------------------------------------------------------------- the one error path


def _one_line(error: BaseException) -> str:
    text = " ".join(str(error).split())
    if isinstance(error, MemoryError):
        return f"out of memory{': ' + text if text else ''} (try a smaller --batch-size or preset)"
    if isinstance(error, OSError) and not text:
        return type(error).__name__
    return text or type(error).__name__


class _SigtermRaises:
    """SIGTERM raises Terminated while a command runs (training loops catch it first)."""

    def __enter__(self):
        try:
            self._previous = signal.signal(signal.SIGTERM, self._handle)
        except ValueError:             # not the main thread
            self._previous = None
        return self

    @staticmethod
    def _handle(signum, frame):
        raise Terminated

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def main(argv=None) -> int:
    """Run one command; every failure is one line on stderr and an exit code (above)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    code, message, caught = EXIT_OK, None, None
    args = None
    with _SigtermRaises():
        try:
            if argv[:1] == ["toy"]:           # the toy model parses its own options
                from .toy import run_cli
                return run_cli(argv[1:])
            args = build_parser().parse_args(argv)
            return args.func(args)
        except GridStopped as error:         # a multi-run command: its message says it all
            code = EXIT_TERMINATED if error.signal == "SIGTERM" else EXIT_INTERRUPTED
            message, caught = _one_line(error), error
        except (ValueError, TypeError) as error:
            code, message, caught = EXIT_BAD_INPUT, _one_line(error), error
        except TrainingDiverged as error:
            code, message, caught = EXIT_DIVERGED, _one_line(error), error
        except (OSError, MemoryError) as error:
            code, message, caught = EXIT_SYSTEM, _one_line(error), error
        except KeyboardInterrupt as error:
            code, message, caught = EXIT_INTERRUPTED, "interrupted (Ctrl-C)", error
        except Terminated as error:
            code, message, caught = EXIT_TERMINATED, "stopped by SIGTERM", error
        except Exception as error:
            code, caught = EXIT_BUG, error
            message = (f"internal error, please report it: {type(error).__name__}: {_one_line(error)}"
                       " (TINYINDUCTION_TRACEBACK=1 shows where)")
    if code in (EXIT_INTERRUPTED, EXIT_TERMINATED) and getattr(args, "resumable", False) \
            and not isinstance(caught, GridStopped):
        message += "; no results written: run the same command again to continue"
    if os.environ.get("TINYINDUCTION_TRACEBACK"):
        traceback.print_exception(caught)
    print(f"error: {message}", file=sys.stderr)
    return code
