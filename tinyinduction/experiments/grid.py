"""Grid specs for `python -m tinyinduction sweep`: a base setting and axes to vary.

A spec (a JSON file, or the same built from command-line flags):
    {"name": "labels",                     the grid's name (recorded in out/grid.json)
     "preset": "paper",                    paper | small: the base configs
     "model": {...}, "task": {...}, "train": {...},   changes to the base configs
     "clamps": ["A", "copy:head=3"],       clamps (the --clamp grammar of subcircuits.py)
     "grid": {"task.n_labels": [5, 10, 15], "train.seed": [5, 6]}}
Every combination of the grid's axes is one run, named from its settings
("n_labels=10,seed=5"). The model's n_labels and d_feature follow the task's.
"""
from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

from ..config import PRESETS, preset
from ..subcircuits import parse_clamp_option
from ..sweep import RunSpec

SPEC_KEYS = ("name", "preset", "model", "task", "train", "clamps", "grid")
SECTIONS = ("model", "task", "train")


def load_spec(path) -> dict:
    """A grid spec from a JSON file, or a one-line error."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ValueError(f"grid spec {path}: no such file") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"grid spec {path}: not readable JSON ({error})") from None


def _fields(section, config) -> set:
    return {f.name for f in dataclasses.fields(config)}


def expand(spec: dict) -> list[RunSpec]:
    """Every run of a grid spec (see the module docstring), validated."""
    if not isinstance(spec, dict):
        raise ValueError(f"grid spec must be a JSON object; got {type(spec).__name__}")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise ValueError(f"grid spec: unknown keys {unknown}; allowed: {list(SPEC_KEYS)}")
    preset_name = spec.get("preset", "paper")
    if preset_name not in PRESETS:
        raise ValueError(f"grid spec: preset = {preset_name!r}; allowed: {PRESETS}")
    base = dict(zip(SECTIONS, preset(preset_name)))
    changes = {section: dict(spec.get(section, {})) for section in SECTIONS}
    for section in SECTIONS:
        bad = sorted(set(changes[section]) - _fields(section, base[section]))
        if bad:
            raise ValueError(f"grid spec: unknown {section} fields {bad}; allowed: "
                             f"{sorted(_fields(section, base[section]))}")
    clamps = tuple(parse_clamp_option(c) if isinstance(c, str) else c for c in spec.get("clamps", []))
    grid = spec.get("grid", {})
    if not isinstance(grid, dict):
        raise ValueError("grid spec: grid must map 'section.field' to a list of values")
    axes = []
    for key, values in grid.items():
        section, dot, field = key.partition(".")
        if not dot or section not in SECTIONS or field not in _fields(section, base[section]):
            raise ValueError(f"grid spec: axis {key!r} is not section.field with section in "
                             f"{SECTIONS} and a field of that config")
        if not isinstance(values, list) or not values:
            raise ValueError(f"grid spec: axis {key!r} is empty; give a non-empty list of values")
        for value in values:
            if values.count(value) > 1:
                raise ValueError(f"grid spec: axis {key}: {value!r} is given twice")
        axes.append((section, field, values))
    names = [field for _, field, _ in axes]
    short = len(set(names)) == len(names)
    runs = []
    for combination in itertools.product(*[values for _, _, values in axes]):
        point = {section: dict(changes[section]) for section in SECTIONS}
        label = []
        for (section, field, _), value in zip(axes, combination):
            point[section][field] = value
            label.append(f"{field if short else section + '.' + field}={value}")
        task = dataclasses.replace(base["task"], **point["task"])
        model = base["model"].replace(**{"n_labels": task.n_labels, **point["model"]})
        train = base["train"].replace(**point["train"])
        runs.append(RunSpec(",".join(label) or spec.get("name", "run"), model, task, train, clamps))
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
