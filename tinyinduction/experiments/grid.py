"""Grid specs for `python -m tinyinduction sweep`: a base setting and axes to vary.

A spec (a JSON file, or the same built from command-line flags):
    {"name": "labels",                     the grid's name (recorded in out/grid.json)
     "preset": "paper",                    paper | small: the base configs
     "model": {...}, "task": {...}, "train": {...},   changes to the base configs
     "clamps": ["A", "copy:head=3"],       clamps (the --clamp grammar of subcircuits.py,
                                           or objects such as {"kind": "copy", "head": 3})
     "grid": {"task.n_labels": [5, 10, 15], "train.seed": [5, 6]}}
Every combination of the grid's axes is one run, named from its settings
("n_labels=10,seed=5"; any value, e.g. "features=builtin:rank=4", is a valid name: the
sweep runner derives a safe directory name from it). The model's n_labels follows the
task's, and so does d_feature when the task's features are not the preset's.

Everything is checked before a run is made, and every refusal names the key: a key
given twice (in the file or with --grid), a section that is not an object, a clamp list
that is not a list, an axis that is not a non-empty list of distinct values, a field
that is both fixed and varied, and every value (through the configs' own checks).
"""
from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

from ..presets import PRESETS, preset
from ..subcircuits import normalise_spec, parse_clamp_option
from ..sweep import RunSpec, make_task

SPEC_KEYS = ("name", "preset", "model", "task", "train", "clamps", "grid")
SECTIONS = ("model", "task", "train")


def _refuse_duplicate_keys(pairs):
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise ValueError(f"key {key!r} is given twice")
    return dict(pairs)


def load_spec(path) -> dict:
    """A grid spec from a JSON file (any key given twice is refused), or a one-line error."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ValueError(f"grid spec {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ValueError(f"grid spec {path}: not readable ({error})") from None
    try:
        return json.loads(text, object_pairs_hook=_refuse_duplicate_keys)
    except ValueError as error:
        raise ValueError(f"grid spec {path}: {error}") from None


def _fields(config) -> set:
    return {f.name for f in dataclasses.fields(config)}


def _as_config_value(value):
    """JSON lists as tuples (the configs' tuple fields, e.g. train_exemplars)."""
    return tuple(value) if isinstance(value, list) else value


def _describe(value) -> str:
    return f"a {type(value).__name__} ({json.dumps(value)[:40]})"


def _check_clamps(clamps) -> tuple:
    if not isinstance(clamps, list):
        raise ValueError(f"grid spec: clamps must be a list of clamps (e.g. [\"copy:head=3\"]), "
                         f"not {_describe(clamps)}")
    checked = []
    for i, clamp in enumerate(clamps):
        if not isinstance(clamp, (str, dict)):
            raise ValueError(f"grid spec: clamps[{i}] must be a string such as \"copy:head=3\" or "
                             f"an object, not {_describe(clamp)}")
        try:
            checked.append(parse_clamp_option(clamp) if isinstance(clamp, str) else normalise_spec(clamp))
        except ValueError as error:
            raise ValueError(f"grid spec: clamps[{i}]: {error}") from None
    return tuple(checked)


def _check_axes(grid, base, changes) -> list:
    if not isinstance(grid, dict):
        raise ValueError("grid spec: grid must be an object mapping \"section.field\" to a list "
                         f"of values, not {_describe(grid)}")
    axes = []
    for key, values in grid.items():
        section, dot, field = key.partition(".")
        if not dot or section not in SECTIONS or field not in _fields(base[section]):
            raise ValueError(f"grid spec: grid axis {key!r} is not section.field with section in "
                             f"{SECTIONS} and a field of that config")
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid spec: grid axis {key} must be a non-empty list of values, "
                             f"not {_describe(values)}")
        for value in values:
            if sum(json.dumps(value) == json.dumps(v) for v in values) > 1:
                raise ValueError(f"grid spec: grid axis {key}: {value!r} is given twice")
        if field in changes[section]:
            raise ValueError(f"grid spec: {key} is both fixed ({section}: {{{field!r}: ...}}) and "
                             "a grid axis; give it in one place")
        axes.append((section, field, values))
    return axes


def _config(make, where: str):
    """make() with a config's ValueError/TypeError prefixed by where it came from."""
    try:
        return make()
    except (ValueError, TypeError) as error:
        raise ValueError(f"grid spec: {where}: {error}") from None


def expand(spec: dict) -> list[RunSpec]:
    """Every run of a grid spec (see the module docstring), validated."""
    if not isinstance(spec, dict):
        raise ValueError(f"grid spec must be a JSON object {{\"name\": ..., \"grid\": ...}}, not "
                         f"{_describe(spec)}")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise ValueError(f"grid spec: unknown keys {unknown}; allowed: {list(SPEC_KEYS)}")
    name = spec.get("name", "sweep")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"grid spec: name must be a non-empty string, not {_describe(name)}")
    preset_name = spec.get("preset", "paper")
    if not isinstance(preset_name, str) or preset_name not in PRESETS:
        raise ValueError(f"grid spec: preset = {preset_name!r}; allowed: {PRESETS}")
    base = dict(zip(SECTIONS, preset(preset_name)))
    changes = {}
    for section in SECTIONS:
        given = spec.get(section, {})
        if not isinstance(given, dict):
            raise ValueError(f"grid spec: {section} must be an object {{field: value}}, not "
                             f"{_describe(given)}")
        bad = sorted(set(given) - _fields(base[section]))
        if bad:
            raise ValueError(f"grid spec: unknown {section} fields {bad}; allowed: "
                             f"{sorted(_fields(base[section]))}")
        changes[section] = {field: _as_config_value(value) for field, value in given.items()}
    clamps = _check_clamps(spec.get("clamps", []))
    axes = _check_axes(spec.get("grid", {}), base, changes)
    names = [field for _, field, _ in axes]
    short = len(set(names)) == len(names)
    runs = []
    for combination in itertools.product(*[values for _, _, values in axes]):
        point = {section: dict(changes[section]) for section in SECTIONS}
        label, where = [], []
        for (section, field, _), value in zip(axes, combination):
            point[section][field] = _as_config_value(value)
            label.append(f"{field if short else section + '.' + field}={value}")
            where.append(f"{section}.{field} = {value!r}")
        where = "run " + ", ".join(where) if where else "settings"
        task = _config(lambda: dataclasses.replace(base["task"], **point["task"]), where)
        model_changes = {"n_labels": task.n_labels}
        if task.features != base["task"].features and "d_feature" not in point["model"]:
            model_changes["d_feature"] = _config(lambda: int(make_task(task).feature_dim), where)
        model = _config(lambda: base["model"].replace(**{**model_changes, **point["model"]}), where)
        train = _config(lambda: base["train"].replace(**point["train"]), where)
        runs.append(RunSpec(",".join(label) or name, model, task, train, clamps))
    return runs


def spec_from_flags(preset_name, grid_flags, clamp_flags, name=None) -> dict:
    """A grid spec from `--grid section.field=v1,v2` and `--clamp ...` flags."""
    grid = {}
    for flag in grid_flags or []:
        key, eq, values = flag.partition("=")
        if not eq:
            raise ValueError(f"--grid {flag!r}: expected section.field=v1,v2,...")
        parsed = []
        for text in values.split(","):
            try:
                parsed.append(json.loads(text))
            except ValueError:
                parsed.append(text)
        if values.strip() == "":
            parsed = []
        if key.strip() in grid:
            raise ValueError(f"--grid {key.strip()} is given twice; give every value of an axis "
                             "in one --grid")
        grid[key.strip()] = parsed
    return {"name": name or "sweep", "preset": preset_name, "clamps": list(clamp_flags or []),
            "grid": grid}
