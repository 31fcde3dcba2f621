"""Hook that decides when DA-VPT's class -> prompt mapping is built and
refreshed (paper Sec. 3.4); what happens is the model's business."""
import json
import os.path as osp
import warnings
from typing import Optional

from mmengine import dist
from mmengine.hooks import Hook
from mmengine.utils import ProgressBar
from mmseg.registry import HOOKS

from ...models.guidance.class_statistics import (CacheMismatchError,
                                                 describe, ensure_writable)
from ...utils.checkpoint_file import CheckpointFileError
from ...utils.model import unwrap_model
from ...utils.registry import also_in_mmpretrain
from ...utils.rng import untouched_rng
from .mapping_settings import (SETTINGS_KEY, check_mapping_settings,
                               data_settings, first_refresh,
                               refuses_iteration_loop)

HISTORY_FILE = 'davpt_mapping_history.jsonl'


@also_in_mmpretrain('HOOKS')
@HOOKS.register_module()
class ClassPromptMappingHook(Hook):
    """Initial class-feature pass before training, k-means refreshes during it.

    The mapping is model state (``model.metric_guidance.mapping``); this hook
    only decides *when* to fill and refresh it, through the model's public
    methods (``collect_class_features``, ``refresh_class_mapping``,
    ``save_class_statistics`` / ``load_class_statistics``,
    ``reset_class_statistics``, ``prompt_class_groups``). A run resumed from
    a checkpoint that already holds a mapping skips the initial pass. During
    training the model accumulates the class features of every batch.

    Refresh schedule: after training epoch / iteration ``i`` (0-based) when
    ``i >= begin`` and ``(i + 1) % interval == 0``; the statistics used are
    those of the ``interval`` epochs / iterations before it (they are reset
    at the start of that window). The released code's ``dynamic_kmeans=k``
    (from epoch ``k`` on, re-cluster after every epoch; 0 = never) is
    ``by_epoch=True, interval=1, begin=k``, and ``refresh=False`` for 0.

    Args:
        interval: refresh every ``interval`` iterations (``by_epoch=False``)
            or epochs (``by_epoch=True``).
        by_epoch: see ``interval``.
        begin: first epoch / iteration (0-based) after which a refresh may
            happen; earlier ones keep the initial mapping.
        refresh: ``False`` keeps the initial mapping for the whole run.
        initial: ``'kmeans'`` (the method): the initial mapping clusters the
            class features of a pass with the pretrained model;
            ``'random'`` (an ablation): a random fixed assignment instead
            (``assign_random_class_mapping``: classes shuffled with
            ``random_seed`` and dealt round-robin onto the guided prompts),
            no pass; needs ``refresh=False``.
        random_seed: seed of the random assignment; ``None`` = the runner's
            seed (``randomness.seed``).
        init_max_iters: cap on batches (per rank) of the initial pass over
            the training set; ``None`` = one epoch across all ranks.
        cache_file: where to save the initial class statistics, and load
            them from on later runs (skipping the pass). The cache records
            what the statistics depend on (classes, feature width, mapping
            layer and features, prompt counts, fingerprints of the base
            weights and the prompts, the training data config, seed and
            ``init_max_iters``); a cache made under other settings is
            recomputed and rewritten, with a warning naming each
            difference. A file there that is no statistics cache is an
            error (never written over). Its folder is created (and checked
            writable) before the pass.

    The initial pass leaves the Python, NumPy, torch CPU and CUDA random
    states as it found them: a run trains the same with or without a cache
    file. Checkpoints record the mapping's settings (``guided_layers``,
    mapping layer, features, class and prompt counts); ``--resume`` with
    other settings stops, naming them.
    """

    priority = 'NORMAL'
    INITIAL = ('kmeans', 'random')

    def __init__(self,
                 interval: int = 1000,
                 by_epoch: bool = False,
                 begin: int = 0,
                 refresh: bool = True,
                 init_max_iters: Optional[int] = None,
                 cache_file: Optional[str] = None,
                 initial: str = 'kmeans',
                 random_seed: Optional[int] = None):
        if interval <= 0:
            raise ValueError(f'interval must be > 0, got {interval}')
        if begin < 0:
            raise ValueError(f'begin must be >= 0, got {begin}')
        if init_max_iters is not None and init_max_iters <= 0:
            raise ValueError(
                f'init_max_iters must be > 0 or None, got {init_max_iters}')
        if initial not in self.INITIAL:
            raise ValueError(f'initial must be one of {self.INITIAL}, got '
                             f'{initial!r}')
        if initial == 'random' and refresh:
            raise ValueError(
                "initial='random' is a fixed assignment: set refresh=False "
                '(a k-means refresh would replace it)')
        self.initial = initial
        self.random_seed = random_seed
        self.interval = interval
        self.by_epoch = by_epoch
        self.begin = begin
        self.refresh = refresh
        self.init_max_iters = init_max_iters
        self.cache_file = cache_file
        self._history_checked = False
        # settings recorded in the checkpoint resumed from: True (checked),
        # False (none recorded), None (not resumed)
        self._resumed_settings: Optional[bool] = None

    @staticmethod
    def _model(runner):
        model = unwrap_model(runner.model)
        if getattr(model, 'metric_guidance', None) is None:
            raise TypeError(
                'ClassPromptMappingHook needs a model with metric guidance '
                '(DAVPTEncoderDecoder / DAVPTImageClassifier with '
                'metric_guidance=...); remove the hook from custom_hooks for '
                'VPT baselines')
        return model

    @staticmethod
    def _classes(runner):
        return runner.train_dataloader.dataset.metainfo.get('classes')

    # ----------------------------------------------------------- schedule
    def refreshes_after(self, index: int) -> bool:
        """Whether a refresh follows epoch / iteration ``index`` (0-based)."""
        return self.refresh and index >= self.begin and \
            (index + 1) % self.interval == 0

    def _starts_window(self, index: int) -> bool:
        """Whether ``index`` opens the statistics window of a refresh."""
        return self.refreshes_after(index + self.interval - 1) and \
            index % self.interval == 0

    # ----------------------------------------------------------- initial
    def before_train(self, runner) -> None:
        if self.by_epoch and self.refresh:
            refuses_iteration_loop(runner, type(self).__name__)
        self._warn_without_refresh(runner)
        model = self._model(runner)
        if model.class_mapping_initialized:
            if self._resumed_settings:
                how = 'restored from the checkpoint (its settings match)'
            elif self._resumed_settings is False:
                how = ('restored from the checkpoint, which does not record '
                       'the settings it was made with (not checked)')
            else:
                how = ('taken from the loaded weights (load_from); the '
                       'settings it was made with are not checked')
            runner.logger.info(
                f'DA-VPT: class -> prompt mapping {how} '
                f'({model.class_mapping_refreshes} refreshes so far)')
            return
        if self.initial == 'random':
            seed = runner.seed if self.random_seed is None \
                else self.random_seed
            self._log_mapping(runner, model,
                              model.assign_random_class_mapping(seed),
                              f'random fixed mapping (seed {seed})')
            return
        classes = self._classes(runner)
        settings = None
        if self.cache_file:
            settings = dict(model.class_statistics_settings(),
                            **data_settings(runner, self.init_max_iters))
        if not (self.cache_file and self._load_cache(runner, model, classes,
                                                     settings)):
            if self.cache_file:
                ensure_writable(self.cache_file)  # before, not after, the pass
            # the pass runs the training pipeline (random flips...): it must
            # not change what training draws afterwards
            with untouched_rng():
                self._collect(runner, model)
            if self.cache_file:
                model.save_class_statistics(self.cache_file, classes,
                                            settings)
                runner.logger.info('DA-VPT: class statistics cached to '
                                   f'{self.cache_file}')
        self._refresh(runner, model, 'initial mapping')

    def _warn_without_refresh(self, runner) -> None:
        """A refresh schedule that starts after the run ends is legal (a
        short test run) but worth a line in the log."""
        length = getattr(runner, 'max_epochs' if self.by_epoch
                         else 'max_iters', None)
        if self.refresh and isinstance(length, int) and \
                first_refresh(self.interval, self.begin) >= length:
            unit = 'epochs' if self.by_epoch else 'iterations'
            runner.logger.warning(
                f'DA-VPT: no mapping refresh within this run\'s {length} '
                f'{unit} (interval={self.interval}, begin={self.begin}); the '
                'initial mapping is kept throughout')

    def _load_cache(self, runner, model, classes, settings) -> bool:
        """Load ``cache_file`` if it exists and was made under ``settings``;
        ``False`` when the pass must run (no file, or other settings)."""
        if not osp.isfile(self.cache_file):
            return False
        try:
            model.load_class_statistics(self.cache_file, classes, settings)
        except CacheMismatchError as err:
            runner.logger.warning(
                f'DA-VPT: class-statistics cache {self.cache_file} was made '
                f'under other settings: {describe(err.differences)}. '
                'Recomputing the statistics; the cache will be rewritten.')
            return False
        except CheckpointFileError as err:
            raise ValueError(
                f'cache_file: {err}. It is not written over; point '
                'cache_file at another path or delete the file.') from err
        runner.logger.info('DA-VPT: class statistics loaded from '
                           f'{self.cache_file} (made under the same '
                           'settings)')
        return True

    # ----------------------------------------------------------- checkpoints
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})[SETTINGS_KEY] = \
            self._model(runner).class_mapping_settings()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """On resume: stop when the mapping in ``checkpoint`` was made under
        other settings than this run's (it would guide other layers or
        features than it was clustered for)."""
        saved = (checkpoint.get('meta') or {}).get(SETTINGS_KEY)
        self._resumed_settings = saved is not None
        if saved is not None:
            check_mapping_settings(
                saved, self._model(runner).class_mapping_settings())

    @staticmethod
    def _epoch_loader(runner):
        """One shuffled epoch of the training set, sharded over ranks, built
        by the runner from the training dataloader config (dataset, batch
        size, workers, collate function, worker seeding as in training)
        with a ``DefaultSampler(shuffle=True)`` in place of its sampler.

        A loader of its own: mmengine's ``InfiniteSampler`` keeps one
        generator for the whole run, so iterating ``runner.train_dataloader``
        here would consume the stream the training loop reads from. The
        dataset is built anew from its config (``build_dataloader`` deep-copies
        what it is given, and a built dataset may hold file handles).
        """
        cfg = runner.cfg.get('train_dataloader')
        if cfg is None:
            raise ValueError('ClassPromptMappingHook builds its pass from the '
                             'runner config: train_dataloader is missing')
        cfg = dict(cfg, sampler=dict(type='DefaultSampler', shuffle=True))
        randomness = runner.cfg.get('randomness') or {}
        return runner.build_dataloader(
            cfg, seed=runner.seed,
            diff_rank_seed=randomness.get('diff_rank_seed', False))

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

    # ----------------------------------------------------------- refresh
    def _refresh(self, runner, model, what: str) -> None:
        self._log_mapping(runner, model, model.refresh_class_mapping(), what)

    def _log_mapping(self, runner, model, stats: dict, what: str) -> None:
        """Log a new mapping and append it to the history file."""
        world = dist.get_world_size()
        runner.logger.info(
            f'DA-VPT: {what} (iter {runner.iter}): {stats["changed"]} classes '
            f'changed prompt; {stats["seen_classes"]} classes seen, '
            f'{stats["assigned_classes"]} assigned, '
            f'{stats["unassigned_prompts"]} prompts without a class'
            + (f'; identical on all {world} ranks' if world > 1 else ''))
        groups = dict(enumerate(model.prompt_class_groups(
            self._classes(runner))))
        runner.logger.info('DA-VPT: prompt -> classes: ' + '; '.join(
            f'{p}: {", ".join(names) or "-"}' for p, names in groups.items()))
        self._append_history(runner, dict(iter=runner.iter, what=what,
                                          **stats, prompts=groups))

    def _append_history(self, runner, record: dict) -> None:
        """Append the refresh to ``work_dir/davpt_mapping_history.jsonl``
        (one JSON object per line; append-only, so an interrupted write
        damages at most its own line). Damaged lines found on the first
        write of a run are reported and skipped, never fatal."""
        if dist.get_rank() != 0:
            return
        path = osp.join(runner.work_dir, HISTORY_FILE)
        prefix = ''
        if not self._history_checked and osp.isfile(path):
            prefix = self._check_history(path)
        self._history_checked = True
        with open(path, 'a') as f:
            f.write(prefix + json.dumps(record) + '\n')

    @staticmethod
    def _check_history(path: str) -> str:
        """Warn about lines of ``path`` that are not JSON; returns ``'\\n'``
        when the file ends inside a line (so the next record starts on a
        line of its own)."""
        with open(path) as f:
            text = f.read()
        bad = []
        for number, line in enumerate(text.splitlines(), 1):
            try:
                if line.strip():
                    json.loads(line)
            except ValueError:
                bad.append(number)
        if bad:
            warnings.warn(f'{path}: line(s) {bad} are not valid JSON (an '
                          'interrupted write?); they are kept as they are '
                          'and training continues')
        return '\n' if text and not text.endswith('\n') else ''

    # ----------------------------------------------------------- events
    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        if not self.by_epoch and self._starts_window(runner.iter):
            self._model(runner).reset_class_statistics()

    def before_train_epoch(self, runner) -> None:
        if self.by_epoch and self._starts_window(runner.epoch):
            self._model(runner).reset_class_statistics()

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        if not self.by_epoch and self.refreshes_after(runner.iter):
            self._refresh(runner, self._model(runner), 'mapping refreshed')

    def after_train_epoch(self, runner) -> None:
        if self.by_epoch and self.refreshes_after(runner.epoch):
            self._refresh(runner, self._model(runner), 'mapping refreshed')
