#!/usr/bin/env python
"""The digits transfer experiment in one command: pretrain the tiny digits
ViT on digits 0-4 (cached), convert it, check it with a linear probe
(pretrained vs random), write the downstream data of every seed (few-shot
classification of digits 5-9, digit-scene segmentation), run the per-task
protocol (mmseg_davpt.sweep) on every method config under
configs/digits/{cls,seg}, and report.

    python tools/digits_transfer.py --out DIR [--quick] [--seeds 0 1 2 3 4]
        [--tasks cls seg] [--methods vpt davpt ...] [--data-dir DIR]
        [--jobs 2]

Writes DIR/results.json (every run's settings and scores, the summaries),
DIR/results.md (per task: method, test mean +- sample std, n, chosen
values; paired differences DA-VPT - VPT and DA-VPT+ - VPT with 95%
t-intervals over seeds) and DIR/results.png (mean +- std bars, seeds as
dots). Interrupted runs resume (rerun the same command). ``--quick``: two
seeds, the first grid value of every key, short trainings on few val / test
images and a one-epoch pretraining, for a smoke test (not results). See
docs/digits_transfer.md.
"""
import argparse
import dataclasses
import glob
import json
import os
import os.path as osp
import platform
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
# The path prefix the digits configs use for the data and the ViT; replaced
# by --data-dir.
CONFIG_DATA = 'data/digits'
TASKS = dict(
    cls=dict(title='few-shot classification of digits 5-9',
             suffix='_vit-digits.py',
             order=('linear', 'vpt', 'davpt', 'davpt_plus', 'full',
                    'davpt_lp_only', 'davpt_lcls_only', 'davpt_no_refresh',
                    'davpt_random_map'),
             quick_options={'train_cfg.max_epochs': 3,
                            'test_dataloader.dataset.indices': 100}),
    seg=dict(title='digit-scene segmentation (64x64, SETR-PUP)',
             suffix='_setr_vit-digits_scenes-64x64.py',
             order=('vpt', 'davpt', 'davpt_plus', 'davpt_lp_only'),
             quick_options={'train_cfg.max_iters': 10,
                            'val_dataloader.dataset.indices': 8,
                            'test_dataloader.dataset.indices': 8}))
PAIRS = (('davpt', 'vpt'), ('davpt_plus', 'vpt'))
QUICK_SEEDS = [0, 1]
FULL_SEEDS = [0, 1, 2, 3, 4]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument('--out', required=True, help='output folder')
    parser.add_argument('--quick', action='store_true',
                        help='smoke test: 2 seeds, 1 grid point, short runs')
    parser.add_argument('--seeds', type=int, nargs='+',
                        help=f'default {FULL_SEEDS} ({QUICK_SEEDS} with '
                        '--quick)')
    parser.add_argument('--tasks', nargs='+', choices=sorted(TASKS),
                        default=sorted(TASKS))
    parser.add_argument('--methods', nargs='+',
                        help='only these methods (default: every config)')
    parser.add_argument('--data-dir', default=osp.join(ROOT, CONFIG_DATA),
                        help='data and ViT files (default: data/digits in '
                        'the repository)')
    parser.add_argument('--jobs', type=int, default=1,
                        help='method sweeps run at once, each in a worker '
                        'process with one torch thread (2 on a 2-core '
                        'machine)')
    parser.add_argument('--report-only', action='store_true',
                        help='train nothing: report the method sweeps that '
                        'have finished (DIR/sweeps/*/*/summary.json with '
                        'these seeds) and list the others as missing')
    parser.add_argument('--pretrain-epochs', type=int,
                        help='default: the pretraining function\'s (1 with '
                        '--quick)')
    args = parser.parse_args(argv)
    if args.seeds is None:
        args.seeds = QUICK_SEEDS if args.quick else FULL_SEEDS
    if args.quick and args.pretrain_epochs is None:
        args.pretrain_epochs = 1
    return args


def method_configs(task: str, methods=None):
    """``[(method, config path)]`` of a task, in the report's order."""
    info = TASKS[task]
    found = {}
    for path in glob.glob(osp.join(ROOT, 'configs', 'digits', task,
                                   '*' + info['suffix'])):
        found[osp.basename(path)[:-len(info['suffix'])]] = path
    if not found:
        raise FileNotFoundError(f'no configs/digits/{task}/*{info["suffix"]}')
    if methods:
        unknown = set(methods) - set(found)
        if unknown == set(methods):
            raise ValueError(f'{task}: none of {sorted(methods)} among '
                             f'{sorted(found)}')
        found = {m: p for m, p in found.items() if m in methods}
    order = list(info['order'])
    return sorted(found.items(), key=lambda kv: (
        order.index(kv[0]) if kv[0] in order else len(order), kv[0]))


# ------------------------------------------------------------- preparation
def _pretraining_key(epochs) -> dict:
    """What the cached ViT depends on: the seed, the epochs asked for and
    the pretraining code itself (its source file's SHA-1)."""
    import hashlib

    from mmseg_davpt.digits import pretrain
    with open(pretrain.__file__, 'rb') as f:
        source = hashlib.sha1(f.read()).hexdigest()
    return dict(seed=0, epochs=epochs, pretrain_py_sha1=source)


def ensure_vit(data_dir: str, quick: bool, epochs=None) -> dict:
    """Pretrain (unless cached with the same seed, epochs and pretraining
    code) and convert the digits ViT; returns the paths, whether it was
    cached, and the seconds spent."""
    from mmseg_davpt.digits.pretrain import pretrain_digits_vit
    from tools.convert_vit_checkpoint import main as convert
    name = 'vit-digits-quick' if quick else 'vit-digits'
    timm = osp.join(data_dir, f'{name}_timm.pth')
    mmseg = osp.join(data_dir, f'{name}_mmseg.pth')
    key_file = osp.join(data_dir, f'{name}_pretraining.json')
    key = _pretraining_key(epochs)
    stored = None
    if osp.isfile(key_file):
        with open(key_file) as f:
            stored = json.load(f)
    start, cached = time.time(), osp.isfile(timm) and stored == key
    os.makedirs(data_dir, exist_ok=True)
    if not cached:
        kwargs = {} if epochs is None else dict(epochs=epochs)
        pretrain_digits_vit(timm, seed=0, **kwargs)
        with open(key_file, 'w') as f:
            json.dump(key, f, indent=1)
    if not osp.isfile(mmseg) or osp.getmtime(mmseg) < osp.getmtime(timm):
        convert([timm, mmseg])
    return dict(timm=timm, mmseg=mmseg, cached=cached,
                seconds=time.time() - start, **key)


def probe(timm: str, quick: bool) -> dict:
    """Linear probe on digits 5-9: pretrained vs random ViT."""
    from mmseg_davpt.digits.probe import format_probe, probe_gap
    result = probe_gap(timm, shots=10, draws=2 if quick else 5)
    result['text'] = format_probe(result, osp.basename(timm))
    print(result['text'], flush=True)
    if result['pretrained'] <= result['random']:
        print('WARNING: the pretrained ViT probes no better than a random '
              'one; transfer results below say little', flush=True)
    return result


def seg_data(root: str, seed: int) -> str:
    """The digit scenes of ``seed`` (kept when ``meta.json`` says they are
    this seed's)."""
    from mmseg_davpt.digits.scenes import make_digit_scenes
    meta = osp.join(root, 'meta.json')
    if osp.isfile(meta):
        with open(meta) as f:
            if json.load(f).get('seed') == seed:
                return root
    return make_digit_scenes(root, seed)


def make_data(data_dir: str, tasks, seeds) -> dict:
    """Write every seed's data; ``{task: {seed: root}}``."""
    from mmseg_davpt.digits.cls_data import make_digits_cls_data
    roots = {}
    for task in tasks:
        roots[task] = {}
        for seed in seeds:
            root = osp.join(data_dir, task, f'seed{seed}')
            if task == 'cls':
                make_digits_cls_data(root, seed)
            else:
                seg_data(root, seed)
            roots[task][seed] = root
    return roots


# ------------------------------------------------------------------ sweeps
def relocate(value, data_dir: str):
    """A config path under ``data/digits`` moved under ``data_dir``."""
    if isinstance(value, str) and value.startswith(CONFIG_DATA + '/'):
        return osp.join(data_dir, value[len(CONFIG_DATA) + 1:])
    return value


def build_specs(args, vit: dict) -> list:
    """``[(task, method, SweepSpec)]`` of every method config."""
    from mmseg_davpt.sweep import spec_from_config
    specs = []
    for task in args.tasks:
        for method, config in method_configs(task, args.methods):
            options = {'model.backbone.init_cfg.checkpoint': vit['mmseg']}
            if args.quick:
                options.update(TASKS[task]['quick_options'],
                               **quick_mapping_options(config))
            spec = spec_from_config(
                config, osp.join(args.out, 'sweeps', task, method),
                seeds=args.seeds, cfg_options=options, name=method)
            changes = dict(seed_options={
                k: relocate(v, args.data_dir)
                for k, v in spec.seed_options.items()})
            if args.quick:
                changes['grid'] = {k: list(v)[:1]
                                   for k, v in spec.grid.items()}
            specs.append((task, method, dataclasses.replace(spec, **changes)))
    return specs


def finished_sweeps(specs: list, seeds: list):
    """``--report-only``: the specs whose sweep finished with ``seeds``,
    their summaries, and the names (``task/method``) of the others."""
    done, summaries, missing = [], [], []
    for task, method, spec in specs:
        path = osp.join(spec.work_dir, 'summary.json')
        summary = None
        if osp.isfile(path):
            with open(path) as f:
                summary = json.load(f)
        if summary is not None and summary.get('seeds') == seeds:
            done.append((task, method, spec))
            summaries.append(summary)
        else:
            missing.append(f'{task}/{method}')
    return done, summaries, missing


def quick_mapping_options(config: str) -> dict:
    """``--quick``: the DA-VPT mapping hook's initial feature pass over 2
    batches instead of the whole training split."""
    from mmseg_davpt.utils.config import load_config
    hooks = load_config(config).get('custom_hooks') or []
    return {f'custom_hooks.{i}.init_max_iters': 2
            for i, hook in enumerate(hooks)
            if hook.get('type') == 'ClassPromptMappingHook'}


def run_records(out: str) -> list:
    """Every finished run's settings and scores (without the resolved
    config, which each run folder keeps)."""
    records = []
    for path in sorted(glob.glob(osp.join(out, 'sweeps', '*', '*', 'runs',
                                          '*', '*', '*', 'result.json'))):
        with open(path) as f:
            record = json.load(f)
        record.pop('resolved', None)
        record['task'], record['method'] = \
            osp.relpath(path, osp.join(out, 'sweeps')).split(os.sep)[:2]
        records.append(record)
    return records


def mapping_stats(out: str, records: list) -> dict:
    """Per task and method, over the final runs' class -> prompt mapping
    histories (``davpt_mapping_history.jsonl``): the number of refreshes,
    the mean number of classes that changed prompt per refresh, and the
    share of refreshes that changed anything."""
    stats = {}
    for r in records:
        path = osp.join(out, 'sweeps', r['task'], r['method'], 'runs',
                        r['name'], 'davpt_mapping_history.jsonl')
        if r['phase'] != 'final' or not osp.isfile(path):
            continue
        with open(path) as f:
            events = [json.loads(line) for line in f if line.strip()]
        refreshes = [e for e in events
                     if e.get('what') == 'mapping refreshed']
        entry = stats.setdefault(r['task'], {}).setdefault(
            r['method'], dict(runs=0, refreshes=0, changed=0, changing=0))
        entry['runs'] += 1
        entry['refreshes'] += len(refreshes)
        entry['changed'] += sum(e.get('changed', 0) for e in refreshes)
        entry['changing'] += sum(e.get('changed', 0) > 0 for e in refreshes)
    for methods in stats.values():
        for e in methods.values():
            n = max(e['refreshes'], 1)
            e.update(mean_changed=e['changed'] / n,
                     share_changing=e['changing'] / n)
    return stats


def mapping_table(stats: dict) -> list:
    if not stats:
        return []
    lines = ['| method | final runs | refreshes per run | classes changed '
             'per refresh | refreshes that changed the mapping |',
             '|---|---|---|---|---|']
    for method, e in stats.items():
        lines.append(f'| {method} | {e["runs"]} | '
                     f'{e["refreshes"] / e["runs"]:.1f} | '
                     f'{e["mean_changed"]:.2f} | '
                     f'{100 * e["share_changing"]:.0f}% |')
    return lines


# ------------------------------------------------------------------ report
def write_report(out: str, results: dict) -> None:
    from mmseg_davpt.sweep.report import (methods_table, paired_table,
                                          plot_methods)
    with open(osp.join(out, 'results.json'), 'w') as f:
        json.dump(results, f, indent=1)
    cached = ' (some runs were cached from an earlier invocation)' \
        if results['cached_runs'] else ''
    quick = ' (QUICK mode: short runs, one grid point; not results)' \
        if results['quick'] else ''
    lines = [
        '# Digits transfer: results', '',
        f'Command: `{results["command"]}`  ',
        f'Machine: {results["machine"]}  ',
        f'Wall time: {results["wall_seconds"] / 60:.1f} min; CPU time of '
        f'the training runs {results["run_cpu_seconds"] / 60:.1f} min'
        f'{cached}  ',
        f'Seeds: {results["seeds"]}{quick}',
        '', f'Pretrained ViT check: {results["probe"]["text"]}', '',
        *([f'NOT FINISHED, not in this report: '
           f'{", ".join(results["missing"])}', '']
          if results['missing'] else []),
        'Per method: the grid is chosen on the val split (mean over seeds),'
        ' the chosen setting is retrained on train+val and tested once per '
        'seed; std is the sample std over seeds.']
    panels = []
    for task, summaries in results['tasks'].items():
        rows = list(summaries.values())
        lines += ['', f'## {TASKS[task]["title"]}', '']
        lines += methods_table(rows)
        paired = results['paired'].get(task, [])
        if paired:
            lines += ['', 'Paired differences over seeds (same data, same '
                      'seed):', ''] + paired_table(paired)
        mapping = results['mapping'].get(task)
        if mapping:
            lines += ['', 'Class -> prompt mapping of the final runs (k-means'
                      ' refreshes; initial mapping not counted):', '']
            lines += mapping_table(mapping)
        panels.append((TASKS[task]['title'], rows))
    with open(osp.join(out, 'results.md'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    plot_methods(panels, osp.join(out, 'results.png'))


def machine() -> str:
    import torch
    return (f'{platform.machine()} {platform.system()}, {os.cpu_count()} CPU '
            f'cores visible, torch {torch.__version__} with '
            f'{torch.get_num_threads()} threads')


def main(argv=None) -> dict:
    args = parse_args(argv)
    start = time.time()
    import mmseg_davpt  # noqa: F401
    from mmseg_davpt.sweep import Progress, run_sweeps
    from mmseg_davpt.sweep.report import paired_rows
    from tools.train import check_train_split
    os.makedirs(args.out, exist_ok=True)
    vit = ensure_vit(args.data_dir, args.quick, args.pretrain_epochs)
    how = 'cached' if vit['cached'] else 'pretrained'
    print(f'digits ViT: {vit["mmseg"]} ({how}, {vit["seconds"]:.0f} s)',
          flush=True)
    probe_result = probe(vit['timm'], args.quick)
    specs = build_specs(args, vit)
    progress = Progress(sum(spec.num_runs for _, _, spec in specs))
    if args.report_only:
        specs, summaries, missing = finished_sweeps(specs, args.seeds)
    else:
        make_data(args.data_dir, args.tasks, args.seeds)
        print(f'{len(specs)} method configs, seeds {args.seeds}: '
              f'{progress.total} runs', flush=True)
        if args.jobs > 1:  # the slow segmentation sweeps first
            specs.sort(key=lambda s: s[0] != 'seg')
        summaries = run_sweeps([spec for _, _, spec in specs], args.jobs,
                               check_train_split, progress)
        missing = []
    done = {(task, method): summary
            for (task, method, _), summary in zip(specs, summaries)}
    tasks = {}
    for task, method in sorted(done, key=lambda k: args.tasks.index(k[0])):
        tasks.setdefault(task, {})[method] = done[task, method]
    results = dict(
        command='python tools/digits_transfer.py ' + ' '.join(
            argv if argv is not None else sys.argv[1:]),
        quick=args.quick, seeds=args.seeds, jobs=args.jobs,
        machine=machine(),
        wall_seconds=time.time() - start,
        cached_runs=progress.done - progress.executed,
        report_only=args.report_only, missing=missing,
        vit=vit, probe=probe_result, tasks=tasks,
        paired={t: paired_rows(s, PAIRS) for t, s in tasks.items()},
        runs=run_records(args.out))
    results['mapping'] = mapping_stats(args.out, results['runs'])
    results['run_cpu_seconds'] = sum(r.get('cpu_seconds', 0.)
                                     for r in results['runs'])
    write_report(args.out, results)
    print(open(osp.join(args.out, 'results.md')).read())
    print(f'wrote {args.out}/results.json, results.md, results.png '
          f'({results["wall_seconds"]:.0f} s)')
    return results


if __name__ == '__main__':
    sys.path.insert(0, ROOT)
    main()
