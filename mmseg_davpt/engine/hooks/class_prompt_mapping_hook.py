"""Hook that builds and refreshes DA-VPT's class -> prompt mapping."""
import json
import os
import os.path as osp
from typing import Optional

import torch
from torch.utils.data import DataLoader
from mmengine import dist
from mmengine.dataset import DefaultSampler
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.utils import ProgressBar
from mmseg.registry import HOOKS

from ...utils.registry import also_in_mmpretrain


@also_in_mmpretrain('HOOKS')
@HOOKS.register_module()
class ClassPromptMappingHook(Hook):
    """Initial class-feature pass before training, k-means refreshes during it.

    The mapping itself is model state (``model.metric_guidance.mapping``);
    this hook only decides *when* to fill and refresh it, through the model's
    ``collect_class_features`` / ``refresh_class_mapping``. A run resumed
    from a checkpoint that already holds a mapping skips the initial pass.

    Args:
        interval: refresh every ``interval`` iterations (``by_epoch=False``)
            or epochs (``by_epoch=True``). During training the model
            accumulates class features of every batch for free.
        by_epoch: see ``interval``.
        init_max_iters: cap on batches (per rank) of the initial pass over
            the training set; ``None`` = one epoch across all ranks.
        cache_file: where to save the initial class statistics, and load
            them from on later runs (skipping the pass). Checked against the
            dataset's classes and the feature width.
    """

    priority = 'NORMAL'

    def __init__(self,
                 interval: int = 1000,
                 by_epoch: bool = False,
                 init_max_iters: Optional[int] = None,
                 cache_file: Optional[str] = None):
        if interval <= 0:
            raise ValueError(f'interval must be > 0, got {interval}')
        if init_max_iters is not None and init_max_iters <= 0:
            raise ValueError(
                f'init_max_iters must be > 0 or None, got {init_max_iters}')
        self.interval = interval
        self.by_epoch = by_epoch
        self.init_max_iters = init_max_iters
        self.cache_file = cache_file

    @staticmethod
    def _model(runner):
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if getattr(model, 'metric_guidance', None) is None:
            raise TypeError(
                'ClassPromptMappingHook needs a model with metric guidance '
                '(DAVPTEncoderDecoder with metric_guidance=...); remove the '
                'hook from custom_hooks for VPT baselines')
        return model

    # ----------------------------------------------------------- initial
    def before_train(self, runner) -> None:
        model = self._model(runner)
        mapping = model.metric_guidance.mapping
        if mapping.initialized:
            runner.logger.info(
                'DA-VPT: class -> prompt mapping restored from the checkpoint '
                f'({int(mapping.num_refreshes)} refreshes so far)')
            return
        classes = runner.train_dataloader.dataset.metainfo.get('classes')
        if self.cache_file and osp.isfile(self.cache_file):
            self._load_cache(mapping, classes)
            runner.logger.info('DA-VPT: class statistics loaded from '
                               f'{self.cache_file}')
        else:
            self._collect(runner, model)
            if self.cache_file:
                self._save_cache(mapping, classes)
                runner.logger.info('DA-VPT: class statistics cached to '
                                   f'{self.cache_file}')
        self._refresh(runner, model, 'initial mapping')

    @staticmethod
    def _epoch_loader(runner) -> DataLoader:
        """One shuffled epoch of the training set, sharded over ranks.

        A loader of its own: iterating ``runner.train_dataloader`` here would
        consume (and, on exit, close) the InfiniteSampler stream that the
        training loop reads from.
        """
        train_loader = runner.train_dataloader
        return DataLoader(
            train_loader.dataset,
            batch_size=train_loader.batch_size,
            sampler=DefaultSampler(train_loader.dataset, shuffle=True,
                                   seed=runner.seed),
            num_workers=train_loader.num_workers,
            collate_fn=train_loader.collate_fn)

    def _collect(self, runner, model) -> None:
        loader = self._epoch_loader(runner)
        total = len(loader)
        if self.init_max_iters is not None:
            total = min(total, self.init_max_iters)
        if total == 0:
            raise ValueError('the training set is empty: no class features '
                             'for the initial class -> prompt mapping')
        runner.logger.info(
            f'DA-VPT: collecting class features over {total} training '
            'batches (frozen model, no gradient) for the initial mapping')
        was_training = model.training
        model.eval()
        bar = ProgressBar(total) if dist.get_rank() == 0 else None
        for i, batch in enumerate(loader):
            if i >= total:
                break
            data = model.data_preprocessor(batch, True)
            model.collect_class_features(data['inputs'], data['data_samples'])
            if bar is not None:
                bar.update()
        if bar is not None:
            print()
        model.train(was_training)

    def _save_cache(self, mapping, classes) -> None:
        feat_sum = mapping.feat_sum.clone()
        feat_count = mapping.feat_count.clone()
        dist.all_reduce(feat_sum, op='sum')
        dist.all_reduce(feat_count, op='sum')
        if dist.get_rank() == 0:
            os.makedirs(osp.dirname(osp.abspath(self.cache_file)),
                        exist_ok=True)
            torch.save(
                dict(feat_sum=feat_sum.cpu(), feat_count=feat_count.cpu(),
                     classes=list(classes) if classes else None,
                     embed_dims=mapping.embed_dims), self.cache_file)
        dist.barrier()

    def _load_cache(self, mapping, classes) -> None:
        cache = torch.load(self.cache_file, map_location='cpu')
        expected = dict(classes=list(classes) if classes else None,
                        embed_dims=mapping.embed_dims)
        for key, value in expected.items():
            if cache.get(key) != value:
                raise ValueError(
                    f'class-statistics cache {self.cache_file} was made for '
                    f'another setting: {key}={cache.get(key)!r}, this run has '
                    f'{value!r}. Delete it or point cache_file elsewhere.')
        # Every rank loads the global sums; the refresh sums over ranks, which
        # scales sums and counts alike and leaves the class means unchanged.
        mapping.feat_sum.copy_(cache['feat_sum'])
        mapping.feat_count.copy_(cache['feat_count'])

    # ----------------------------------------------------------- refresh
    def _refresh(self, runner, model, what: str) -> None:
        stats = model.refresh_class_mapping()
        mapping = model.metric_guidance.mapping
        world = dist.get_world_size()
        if world > 1:
            # Cheap guard (C integers): every rank must train with one mapping.
            if any(not torch.equal(m, mapping.class_to_prompt)
                   for m in dist.all_gather(mapping.class_to_prompt)):
                raise RuntimeError('DA-VPT: ranks disagree on the class -> '
                                   'prompt mapping after a refresh')
        runner.logger.info(
            f'DA-VPT: {what} (iter {runner.iter}): {stats["changed"]} classes '
            f'changed prompt; {stats["seen_classes"]} classes seen, '
            f'{stats["assigned_classes"]} assigned, '
            f'{stats["unassigned_prompts"]} prompts without a class'
            + (f'; identical on all {world} ranks' if world > 1 else ''))
        groups = self._prompt_groups(runner, mapping)
        runner.logger.info('DA-VPT: prompt -> classes: ' + '; '.join(
            f'{p}: {", ".join(names) or "-"}' for p, names in groups.items()))
        self._append_history(runner, dict(iter=runner.iter, what=what,
                                          **stats, prompts=groups))

    @staticmethod
    def _prompt_groups(runner, mapping) -> dict:
        """``{prompt index: [class names]}`` of the current mapping."""
        classes = runner.train_dataloader.dataset.metainfo.get('classes')
        groups = {p: [] for p in range(mapping.num_prompts)}
        for c, p in enumerate(mapping.class_to_prompt.tolist()):
            if p >= 0:
                groups[p].append(classes[c] if classes else str(c))
        return groups

    @staticmethod
    def _append_history(runner, record: dict) -> None:
        """Keep every refresh in ``work_dir/davpt_mapping_history.json``."""
        if dist.get_rank() != 0:
            return
        path = osp.join(runner.work_dir, 'davpt_mapping_history.json')
        history = []
        if osp.isfile(path):
            with open(path) as f:
                history = json.load(f)
        history.append(record)
        with open(path, 'w') as f:
            json.dump(history, f, indent=1)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if not self.by_epoch and self.every_n_train_iters(
                runner, self.interval):
            self._refresh(runner, self._model(runner), 'mapping refreshed')

    def after_train_epoch(self, runner) -> None:
        if self.by_epoch and self.every_n_epochs(runner, self.interval):
            self._refresh(runner, self._model(runner), 'mapping refreshed')
