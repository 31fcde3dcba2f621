"""Warn when training sees no labelled pixel at all.

A training set whose label maps are all the ignore index (typically
``reduce_zero_label=True`` on maps that only use 0, or maps saved with the
wrong values) trains to loss 0 and learns nothing, without any message.
"""
import torch
from mmengine import dist
from mmengine.hooks import Hook
from mmseg.registry import HOOKS

from ...utils.model import unwrap_model


def _describe_dataset(dataset) -> str:
    """``data_root`` / label folder / ``reduce_zero_label`` of a (possibly
    wrapped or concatenated) segmentation dataset."""
    if hasattr(dataset, 'datasets'):  # ConcatDataset
        return '; '.join(_describe_dataset(d) for d in dataset.datasets)
    while not hasattr(dataset, 'data_root') and hasattr(dataset, 'dataset'):
        dataset = dataset.dataset  # RepeatDataset, ClassBalancedDataset
    prefix = getattr(dataset, 'data_prefix', None) or {}
    return (f'{type(dataset).__name__}(data_root='
            f'{getattr(dataset, "data_root", None)!r}, seg_map_path='
            f'{prefix.get("seg_map_path")!r}, reduce_zero_label='
            f'{getattr(dataset, "reduce_zero_label", None)})')


@HOOKS.register_module()
class LabelledPixelsHook(Hook):
    """Count labelled pixels (not ``ignore_index``) in the first
    ``check_iters`` training iterations, summed over ranks, and log one
    warning naming the dataset when there are none.

    Args:
        check_iters (int): iterations to look at (from the start of
            training; a run resumed past them checks nothing).
        ignore_index (int | None): default: the decode head's, else 255.
    """

    priority = 'LOW'

    def __init__(self, check_iters: int = 20, ignore_index=None):
        if check_iters < 1:
            raise ValueError(f'LabelledPixelsHook: check_iters must be >= 1, '
                             f'got {check_iters}')
        self.check_iters = check_iters
        self.ignore_index = ignore_index
        self._labelled = self._images = 0
        self._done = False

    def before_train(self, runner) -> None:
        self._labelled = self._images = 0
        self._done = runner.iter >= self.check_iters
        if self.ignore_index is None:
            head = getattr(unwrap_model(runner.model), 'decode_head', None)
            self.ignore_index = getattr(head, 'ignore_index', 255)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if self._done:
            return
        samples = (data_batch or {}).get('data_samples') or []
        for sample in samples:
            if 'gt_sem_seg' in sample:
                self._images += 1
                if not self._labelled:  # one labelled pixel is enough
                    gt = sample.gt_sem_seg.data
                    self._labelled += int((gt != self.ignore_index).sum())
        if runner.iter + 1 >= self.check_iters or self.is_last_train_iter(
                runner):
            self._done = True
            self._report(runner)

    def _report(self, runner) -> None:
        counts = torch.tensor([self._labelled, self._images],
                              dtype=torch.float64)
        if dist.get_world_size() > 1:  # every rank is here, same iteration
            dist.all_reduce(counts)
        labelled, images = int(counts[0]), int(counts[1])
        if labelled or not images or dist.get_rank() != 0:
            return
        runner.logger.warning(
            f'No labelled pixel in the first {runner.iter + 1} training '
            f'iterations ({images} images): every label is the ignore index '
            f'{self.ignore_index}, so the losses are 0 and nothing is '
            f'learnt. Dataset: '
            f'{_describe_dataset(runner.train_dataloader.dataset)}. Check '
            f'reduce_zero_label (it turns label 0 into {self.ignore_index}: '
            f'maps that use only 0 become all-ignored), the ignore_index, '
            f'and that the label maps hold class indices.')
