"""Shared by the tests of training runs (test_train, test_runs, test_stops,
test_background_evaluation)."""
from tinyinduction.presets import preset


def quiet(*args):
    pass


def short_run(steps=60, **changes):
    """The small preset, `steps` long, evaluated every 20 steps, checkpointed every 40,
    silent; `changes` replace any train setting."""
    model, task, train_config = preset("small")
    settings = {"steps": steps, "eval_every": 20, "checkpoint_every": 40, "log_every": 0, **changes}
    return model, task, train_config.replace(**settings)


def without_wall_time(history):
    return {k: v for k, v in history.items() if k != "wall_time"}
