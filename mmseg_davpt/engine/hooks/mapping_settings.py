"""Checks of ``ClassPromptMappingHook`` against the run it is in: settings
recorded with a mapping or its statistics, and schedules that would never
refresh."""
import hashlib
import json
from typing import Dict, Optional

from mmengine.runner import EpochBasedTrainLoop

#: key under ``checkpoint['meta']`` of the mapping's settings
SETTINGS_KEY = 'davpt_mapping_settings'


def check_mapping_settings(saved: Dict, current: Dict) -> None:
    """``ValueError`` naming each setting of a resumed mapping (``saved``,
    from the checkpoint) that differs from this run's (``current``)."""
    differences = [f'{k}: checkpoint {saved.get(k)!r}, this run '
                   f'{current.get(k)!r}'
                   for k in sorted(set(saved) | set(current))
                   if saved.get(k) != current.get(k)]
    if differences:
        raise ValueError(
            'resume: the class -> prompt mapping in the checkpoint was made '
            'under other metric-guidance settings than this run\'s ('
            + '; '.join(differences) + '). Resume with the settings of the '
            'checkpoint, or start a new run (load_from) to build a new '
            'mapping.')


def data_settings(runner, init_max_iters: Optional[int]) -> Dict:
    """What the initial pass's statistics depend on, on the data side: the
    training data root, its number of samples, a digest of the whole
    training dataloader config (pipeline, batch size...), the seed (random
    augmentation in the pass) and ``init_max_iters``."""
    cfg = runner.cfg.get('train_dataloader') or {}
    text = json.dumps(cfg, sort_keys=True, default=str)
    return dict(
        train_data_root=(cfg.get('dataset') or {}).get('data_root'),
        train_samples=len(runner.train_dataloader.dataset),
        train_dataloader=hashlib.sha256(text.encode()).hexdigest()[:16],
        seed=runner.seed, init_max_iters=init_max_iters)


def refuses_iteration_loop(runner, hook_name: str) -> None:
    """``by_epoch=True`` in an iteration-based loop: no epoch ever ends, so
    the mapping would never be refreshed. ``ValueError`` naming both."""
    loop = runner.train_loop
    if not isinstance(loop, EpochBasedTrainLoop):
        raise ValueError(
            f'{hook_name}(by_epoch=True) refreshes after training epochs, but '
            f'the train loop is {type(loop).__name__} (train_cfg.type / '
            'by_epoch=False): no epoch ends, so the mapping would never be '
            f'refreshed. Set {hook_name}(by_epoch=False, interval=<iters>), '
            'or refresh=False to keep the initial mapping.')


def first_refresh(interval: int, begin: int) -> int:
    """The first epoch / iteration (0-based) a refresh follows."""
    first = max(begin, interval - 1)
    return first + (-(first + 1)) % interval
