"""Grid points, seed-dependent options and run names of a sweep."""
import itertools
import re
from typing import Any, Dict, List, Mapping, Sequence

SEED_KEY = 'randomness.seed'


def expand_grid(grid: Mapping[str, Sequence]) -> List[Dict[str, Any]]:
    """All combinations of ``grid`` (``{config key: [values]}``), in a fixed
    order: keys as given, the last key varying fastest, values as listed.
    An empty grid is one point with no overrides.

    Raises:
        ValueError: a key with no values.
    """
    keys = list(grid)
    values = []
    for key in keys:
        vals = grid[key]
        if not isinstance(vals, (list, tuple)):
            vals = [vals]  # a single value: a fixed setting
        if len(vals) == 0:
            raise ValueError(f'grid key {key!r} has no values')
        values.append(list(vals))
    return [dict(zip(keys, combo)) for combo in itertools.product(*values)]


def _fill(value, seed: int):
    if isinstance(value, str):
        return value.replace('{seed}', str(seed))
    if isinstance(value, (list, tuple)):
        return type(value)(_fill(v, seed) for v in value)
    if isinstance(value, dict):
        return {k: _fill(v, seed) for k, v in value.items()}
    return value


def seed_overrides(seed_options: Mapping[str, Any],
                   seed: int) -> Dict[str, Any]:
    """The config overrides of one seed: every ``{seed}`` in the templates
    of ``seed_options`` replaced by ``seed``, plus ``randomness.seed`` (the
    runner's seed) unless the templates set it."""
    options = {key: _fill(value, seed) for key, value in seed_options.items()}
    if SEED_KEY in options:
        options[SEED_KEY] = int(options[SEED_KEY])
    else:
        options[SEED_KEY] = seed
    return options


def short_keys(keys: Sequence[str]) -> Dict[str, str]:
    """A short, unique name per config key, for folder names: the last
    dotted component (``optim_wrapper.optimizer.lr`` -> ``lr``), or as many
    trailing components as make it unique."""
    names = {}
    for key in keys:
        parts = key.split('.')
        for n in range(1, len(parts) + 1):
            name = '.'.join(parts[-n:])
            others = [k for k in keys if k != key]
            if all(not ('.' + k).endswith('.' + name) for k in others):
                break
        names[key] = name
    return names


def format_value(value) -> str:
    """A value as it appears in run names and tables (``1e-03`` style for
    small floats, ``repr`` otherwise)."""
    if isinstance(value, float):
        return f'{value:g}'
    return str(value)


def point_name(point: Mapping[str, Any]) -> str:
    """A folder-safe name of a grid point, e.g. ``lr=0.001_weight_decay=0.1``
    (``default`` for the empty point)."""
    if not point:
        return 'default'
    names = short_keys(list(point))
    text = '_'.join(f'{names[k]}={format_value(v)}' for k, v in point.items())
    return re.sub(r'[^A-Za-z0-9._=+-]+', '-', text)
