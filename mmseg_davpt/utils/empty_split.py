"""Stop on an empty data split before a run starts, naming the split and
where its images were looked for (mmengine otherwise fails with NumPy's
``need at least one array to concatenate``, or its InfiniteSampler loops
forever without a batch)."""
from typing import Optional


def _split_dataset(runner, split: str):
    """The built dataset of ``split`` (``'train'``, ``'val'``, ``'test'``),
    or ``None`` when the run has no such loop."""
    if split == 'train':
        return runner.train_dataloader.dataset
    if runner.cfg.get(f'{split}_dataloader') is None:
        return None
    loop = runner.val_loop if split == 'val' else runner.test_loop
    return None if loop is None else loop.dataloader.dataset


def empty_split_message(runner, split: str) -> Optional[str]:
    """Why ``split`` of the runner's config has no samples, or ``None``
    when it has some (or the run has no such split). Builds the split's
    loader if needed; the runner keeps it for the run."""
    try:
        dataset = _split_dataset(runner, split)
        if dataset is None or len(dataset) > 0:
            return None
    except ValueError as err:
        # mmengine's BaseDataset fails this way when serialising no samples
        if 'need at least one array to concatenate' not in str(err):
            raise
    cfg = runner.cfg.get(f'{split}_dataloader').get('dataset', {})
    name = dict(train='training', val='validation').get(split, split)
    return (f'the {name} split is empty: no images found for '
            f'{cfg.get("type")} under data_root={cfg.get("data_root")!r}, '
            f'data_prefix={cfg.get("data_prefix")}, '
            f'ann_file={cfg.get("ann_file", "")!r} '
            f'({split}_dataloader.dataset)')


def check_splits(runner, *splits: str) -> None:
    """``SystemExit`` naming the first of ``splits`` that is empty."""
    for split in splits:
        message = empty_split_message(runner, split)
        if message:
            raise SystemExit(message)
