"""Hook that scores the test split at every validation epoch and writes the
classification report: final-epoch, val-selected and (optimistic)
best-test-epoch accuracy (see :mod:`mmseg_davpt.utils.cls_report`)."""
import hashlib
import json
import os.path as osp
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.runner import EpochBasedTrainLoop
from mmseg.registry import HOOKS

from ...datasets.split_checks import shared_images
from ...utils.cls_report import format_report, summarise_epochs
from ...utils.registry import also_in_mmpretrain
from ...utils.rng import untouched_rng


def image_paths(dataset) -> Optional[frozenset]:
    """The ``img_path`` of every sample, or ``None`` when the dataset does
    not expose them (mmpretrain datasets do)."""
    if not hasattr(dataset, 'get_data_info'):
        return None
    paths = [dataset.get_data_info(i).get('img_path')
             for i in range(len(dataset))]
    return None if None in paths else frozenset(paths)


#: config keys that differ between seeds of one experiment by design
PER_RUN_KEYS = ('randomness', 'work_dir', 'launcher', 'resume', 'load_from')


def run_settings(runner) -> Dict:
    """What makes two runs' reports comparable (averaged over seeds): the
    config file, the number of epochs, every split's dataset, and a digest
    of the whole config except the seed and per-run paths
    (``PER_RUN_KEYS``)."""
    cfg = runner.cfg.to_dict()
    shared = {k: v for k, v in cfg.items() if k not in PER_RUN_KEYS}
    text = json.dumps(shared, sort_keys=True, default=str)
    roots = {split: (cfg.get(f'{split}_dataloader') or {}).get(
        'dataset', {}).get('data_root') for split in ('train', 'val', 'test')}
    return dict(config=osp.basename(runner.cfg.filename or '') or None,
                max_epochs=runner.max_epochs, data_roots=roots,
                config_digest=hashlib.sha256(text.encode()).hexdigest()[:16])


def describe(dataset) -> str:
    """``'VTAB1k(split=val200, data_root=...)'`` for the report."""
    split = getattr(dataset, 'split', None)
    root = getattr(dataset, 'data_root', None)
    return f'{type(dataset).__name__}(split={split}, data_root={root})'


@also_in_mmpretrain('HOOKS')
@HOOKS.register_module()
class ClsReportHook(Hook):
    """Report a classification run as held-out practice asks, next to the
    number the DA-VPT authors' released code reports.

    After each validation epoch (``train_cfg.val_interval``; mmengine always
    validates the last epoch) the hook also evaluates the **test** split
    with the config's ``test_dataloader`` / ``test_evaluator`` (built with
    the runner's own builders; the model is put in eval mode and its mode
    restored; the training's RNG streams are left untouched, so a run with
    the hook trains exactly as one without). It logs one line per epoch,
    ``{epoch, val, test}``, and after training writes
    ``work_dir/{out_file}`` with

    (a) ``final_test``: test accuracy of the final epoch;
    (b) ``selected_test``: test accuracy at the epoch with the highest val
        accuracy (ties: the earliest epoch);
    (c) ``best_test``: the best test epoch, **optimistic** (chosen on the
        test split: what the authors' released code reports),

    plus the per-epoch table, and logs a summary.

    (b) needs a val split that is held out. It is reported as unavailable,
    with the reason, when the val split is the test split (e.g. the VTAB-1k
    final protocol: train on ``train800val200``, validate on ``test``; the
    test split is then not evaluated a second time) or when val images are
    also training images (e.g. ``train800val200`` with ``val200``).

    The report is rewritten after every validation (``finished: false``
    until training ends), and the table is also stored in checkpoints, so
    a killed run keeps its table and ``--resume`` continues it.

    Args:
        metric (str): Key of the val / test metric to report.
        out_file (str): Report file name inside ``work_dir``.
    """

    priority = 'LOW'  # after the val loop's own bookkeeping hooks

    def __init__(self, metric: str = 'accuracy/top1',
                 out_file: str = 'davpt_report.json'):
        self.metric = metric
        self.out_file = out_file
        self.rows: List[Dict] = []
        self._pending_rows: List[Dict] = []
        self._active = False
        self._test_loader = None
        self._test_evaluator = None
        self._val_is_test = False
        self.selection_unavailable: Optional[str] = None
        self.test_overlap: Optional[str] = None
        self.splits: Dict[str, str] = {}
        self.run: Dict = {}

    # ------------------------------------------------------------ set-up
    def before_train(self, runner) -> None:
        if not isinstance(runner.train_loop, EpochBasedTrainLoop):
            raise TypeError('ClsReportHook reports per epoch: it needs an '
                            'epoch-based train loop (train_cfg.by_epoch=True)')
        if runner.val_loop is None:
            runner.logger.warning(
                'ClsReportHook: no validation loop (val_dataloader / '
                'val_cfg), so there are no epochs to report')
            return
        self.rows = self._resumed_rows(runner)
        self._active = True
        train_set = runner.train_dataloader.dataset
        val_set = runner.val_loop.dataloader.dataset
        loader_cfg = runner.cfg.get('test_dataloader')
        evaluator_cfg = runner.cfg.get('test_evaluator')
        if loader_cfg is None or evaluator_cfg is None:
            raise ValueError('ClsReportHook evaluates the test split: the '
                             'config needs test_dataloader and '
                             'test_evaluator')
        with untouched_rng():
            loader = runner.build_dataloader(loader_cfg, seed=None)
        test_set = loader.dataset
        self.splits = dict(train=describe(train_set), val=describe(val_set),
                           test=describe(test_set))
        self.run = run_settings(runner)
        self._val_is_test, self.selection_unavailable = \
            self._check_val_split(train_set, val_set, test_set)
        self.test_overlap = shared_images(image_paths(test_set),
                                          image_paths(train_set), 'test',
                                          'training')
        if self.test_overlap:
            runner.logger.warning(
                f'ClsReportHook: {self.test_overlap}; the test accuracy of '
                'this run is not measured on held-out images')
        if not self._val_is_test:
            self._test_loader = loader
            self._test_evaluator = runner.build_evaluator(evaluator_cfg)
            if hasattr(test_set, 'metainfo'):
                self._test_evaluator.dataset_meta = test_set.metainfo
        note = ('' if self.selection_unavailable is None else
                f'; (b) not available: {self.selection_unavailable}')
        runner.logger.info(
            f'ClsReportHook: at each validation epoch, val = '
            f'{self.splits["val"]}, test = {self.splits["test"]}{note}')

    def _resumed_rows(self, runner) -> List[Dict]:
        """The table of a resumed run up to its epoch (empty for a new run,
        also one that only loaded weights with ``load_from``)."""
        pending, self._pending_rows = self._pending_rows, []
        if runner.epoch == 0:
            return []
        # The epoch-E checkpoint is saved before epoch E is validated, so
        # its table stops at the previous validation; the report written
        # in the work dir after every validation has the rest.
        rows = {row['epoch']: row for row in pending}
        path = osp.join(runner.work_dir, self.out_file)
        if osp.isfile(path):
            with open(path) as f:
                saved = json.load(f)
            if saved.get('metric') == self.metric:
                rows.update({row['epoch']: row for row in saved['epochs']})
        rows = [rows[e] for e in sorted(rows) if e <= runner.epoch]
        interval = getattr(runner.train_loop, 'val_interval', 1)
        if runner.epoch % interval == 0 and \
                runner.epoch not in {row['epoch'] for row in rows}:
            runner.logger.warning(
                f'ClsReportHook: the scores of epoch {runner.epoch} are '
                f'neither in the checkpoint nor in {path}; the report will '
                f'miss that epoch (resume in the original work dir to keep '
                f'it)')
        return rows

    @staticmethod
    def _check_val_split(train_set, val_set,
                         test_set) -> Tuple[bool, Optional[str]]:
        """``(val is the test split, why selecting on val would not be
        held out or None)``, compared by image paths."""
        val, test = image_paths(val_set), image_paths(test_set)
        if val is not None and val == test:
            return True, ('the val split is the test split (e.g. the final '
                          'protocol: train on train800val200, validate on '
                          'test), so no held-out split is left to select on')
        train = image_paths(train_set)
        if val is not None and train is not None and val & train:
            return False, (f'{len(val & train)} of the {len(val)} val images '
                           f'are also training images (e.g. train800val200 '
                           f'with val200), so a choice made on them is not '
                           f'held out')
        with_test = shared_images(val, test, 'val', 'test')
        if with_test:
            return False, (f'{with_test}, so a choice made on them is made '
                           'on the test split')
        return False, None

    # --------------------------------------------------------- per epoch
    def _evaluate_test(self, runner) -> Dict:
        """Test-split metrics of the current model, as mmengine's val loop
        computes them (all ranks take part; results are gathered)."""
        model = runner.model
        was_training = model.training
        model.eval()
        try:
            with untouched_rng(), torch.no_grad():
                for data_batch in self._test_loader:
                    outputs = model.test_step(data_batch)
                    self._test_evaluator.process(data_samples=outputs,
                                                 data_batch=data_batch)
                return self._test_evaluator.evaluate(
                    len(self._test_loader.dataset))
        finally:
            model.train(was_training)

    def _value(self, metrics: Dict, where: str) -> float:
        if self.metric not in metrics:
            raise KeyError(f'ClsReportHook: metric {self.metric!r} not in '
                           f'the {where} metrics {sorted(metrics)}; set '
                           f'ClsReportHook(metric=...)')
        return float(metrics[self.metric])

    def after_val_epoch(self, runner, metrics: Optional[Dict] = None) -> None:
        if not self._active:  # e.g. runner.val() outside training
            return
        val = self._value(metrics or {}, 'val')
        if self._val_is_test:
            row = dict(epoch=runner.epoch, val=None, test=val)
            line = f'test {self.metric} {val:.2f} (val split = test split)'
        else:
            test = self._value(self._evaluate_test(runner), 'test')
            row = dict(epoch=runner.epoch, val=val, test=test)
            line = f'val {self.metric} {val:.2f}, test {self.metric} ' \
                f'{test:.2f}'
        self.rows.append(row)
        runner.logger.info(f'ClsReportHook: epoch {runner.epoch}: {line}')
        # a partial report after every validation: a killed run keeps its
        # table, and --resume reads it back
        self._write(runner, finished=False)

    def _write(self, runner, finished: bool) -> Dict:
        """Summarise the table and write it (main process) to
        ``work_dir/out_file``; ``finished`` marks the end of training."""
        report = summarise_epochs(self.rows, self.metric,
                                  self.selection_unavailable)
        report.update(finished=finished, trained_epochs=runner.epoch,
                      splits=self.splits, test_overlap=self.test_overlap,
                      run=self.run)
        path = osp.join(runner.work_dir, self.out_file)
        if is_main_process():
            with open(path, 'w') as f:
                json.dump(report, f, indent=1)
        return report

    # ------------------------------------------------------------- report
    def after_train(self, runner) -> None:
        if not self._active:
            return
        if not self.rows:
            runner.logger.warning('ClsReportHook: no validation epoch ran; '
                                  'no report written')
            return
        report = self._write(runner, finished=True)
        path = osp.join(runner.work_dir, self.out_file)
        for line in format_report(report) + [f'  written to {path}']:
            runner.logger.info(line)

    # ------------------------------------------------------------- resume
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint.setdefault('meta', {})['davpt_report_epochs'] = \
            [dict(row) for row in self.rows]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # kept until before_train, which knows whether this is a resume
        self._pending_rows = list(
            checkpoint.get('meta', {}).get('davpt_report_epochs', []))
