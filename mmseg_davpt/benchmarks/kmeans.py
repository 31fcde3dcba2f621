"""``kmeans``: time of the class -> prompt mapping refresh
(``ClassPromptMapping.assign`` of the class means, sklearn k-means) and its share of the
training iterations between two refreshes.

Cases (classes x feature dims -> guided prompts):

* ADE20K: 150 x 1024 -> 10 (ViT-L segmentation, refresh every 1263 iters);
* PASCAL Context: 60 x 1024 -> 10 (refresh every 312 iters);
* ImageNet-scale classification: 1000 x 768 -> 20 (refresh every epoch).

Both the first refresh (k-means++, ``n_init=4``) and a warm-started one
(previous centroids, ``n_init=1``) are timed; features are random class
means around 10 (or 20) latent groups, so k-means has structure to find.
"""
import torch

from .common import Report, median, round_robin

# (name, classes, dims, prompts, iterations between refreshes)
CASES = [
    ('ADE20K (seg, ViT-L)', 150, 1024, 10, 1263),
    ('PASCAL Context 60 (seg, ViT-L)', 60, 1024, 10, 312),
    ('1000 classes (cls, ViT-B)', 1000, 768, 20, 25),
]


def class_features(classes, dims, groups, per_class=4, seed=0):
    """``(features (classes * per_class, D), labels)``: samples around
    ``groups`` random centres (the structure k-means should recover)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(groups, dims, generator=g)
    class_centre = centres[torch.arange(classes) % groups] + 0.5 * torch.randn(
        classes, dims, generator=g)
    labels = torch.arange(classes).repeat_interleave(per_class)
    feats = class_centre[labels] + 0.1 * torch.randn(
        len(labels), dims, generator=g)
    return feats, labels


def make_mapping(classes, dims, prompts, seed=0):
    from mmseg_davpt.models.guidance.class_prompt_mapping import \
        ClassPromptMapping
    mapping = ClassPromptMapping(classes, prompts, dims, seed=seed)
    feats, labels = class_features(classes, dims, prompts, seed=seed)
    return mapping, feats, labels


def refresh_case(classes, dims, prompts, warm: bool):
    """A callable doing one refresh (first or warm-started), statistics
    re-accumulated each time outside the k-means (cheap)."""
    mapping, feats, labels = make_mapping(classes, dims, prompts)
    if warm:
        mapping.accumulate(feats, labels)
        mapping.assign(*mapping.class_means())
    first_state = {k: v.clone() for k, v in mapping.state_dict().items()}

    def fn():
        mapping.load_state_dict(first_state)
        mapping.accumulate(feats, labels)
        mapping.assign(*mapping.class_means())

    return fn


def run(args) -> Report:
    report = Report('kmeans', vars(args), 'cpu')
    iters = {'seg': args.seg_iter_s, 'cls': args.cls_iter_s}
    report.note(
        f'Assumed iteration times: segmentation {args.seg_iter_s} s (ViT-L '
        f'SETR, 512x512, 2 images per GPU: a GPU figure; the CPU step at '
        f'128 px is slower still, so the share below is an upper bound), '
        f'classification {args.cls_iter_s} s (ViT-B, batch '
        f'{args.cls_batch}); classification refreshes every epoch: '
        f'{args.cls_images} images / {args.cls_batch} = '
        f'{args.cls_images // args.cls_batch} iterations.')
    cases = {}
    for name, c, d, n, _ in CASES:
        cases[(name, 'first')] = refresh_case(c, d, n, warm=False)
        cases[(name, 'warm')] = refresh_case(c, d, n, warm=True)
    times = round_robin(cases, args.warmup, args.repeats)
    rows, records = [], []
    for name, c, d, n, interval in CASES:
        kind = 'cls' if 'cls' in name else 'seg'
        if kind == 'cls':
            interval = args.cls_images // args.cls_batch
        between = interval * iters[kind]
        for which in ('first', 'warm'):
            med = median(times[(name, which)])
            share = med / between
            rows.append([name, f'{c} x {d} -> {n}', which, med * 1e3,
                         interval, between, f'{100 * share:.3f}%'])
            records.append(dict(case=name, classes=c, dims=d, prompts=n,
                                refresh=which, median_s=med,
                                interval_iters=interval,
                                iter_s=iters[kind],
                                share=share, times_s=times[(name, which)]))
    report.add_table(
        f'mapping refresh, median of {args.repeats}',
        ['case', 'classes x dims -> prompts', 'refresh', 'median ms',
         'interval iters', 'interval s', 'share'], rows, records)
    return report


def add_arguments(parser) -> None:
    parser.add_argument('--seg-iter-s', type=float, default=0.5,
                        help='assumed segmentation iteration time (s)')
    parser.add_argument('--cls-iter-s', type=float, default=0.1,
                        help='assumed classification iteration time (s)')
    parser.add_argument('--cls-images', type=int, default=800,
                        help='images per classification epoch (VTAB-1k)')
    parser.add_argument('--cls-batch', type=int, default=32)
