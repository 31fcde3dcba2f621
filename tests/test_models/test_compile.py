"""``torch.compile`` (mmengine's ``compile=...``) on our segmentor and
classifier: training through the Runner gives eager's losses, and no step
after the first compiles anything (the class draw, the guided-layer taps
and the optimizer step included). Dynamo's ``eager`` backend keeps the
tests fast: graph capture, guards and recompilation are what our code
decides; Inductor's code generation is torch's (docs/performance.md)."""
import copy

import pytest
import torch

from tests._helpers import data_options

torch_dynamo = pytest.importorskip('torch._dynamo')


from mmengine.hooks import Hook  # noqa: E402


class LossRecorder(Hook):
    """Records every iteration's logged losses and dynamo's graph count."""
    priority = 'VERY_LOW'

    def __init__(self):
        self.losses, self.graphs = [], []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        from torch._dynamo.utils import counters
        self.losses.append({k: float(v) for k, v in outputs.items()
                            if 'loss' in k})
        self.graphs.append(counters['stats']['unique_graphs'])


def train_demo(demo_data, tmp_path, compile_cfg, iters=5):
    from mmengine.runner import Runner

    from mmseg_davpt.utils.config import load_config
    from tests._helpers import DAVPT
    opts = [o.split('=', 1) for o in data_options(*demo_data)]
    cfg = load_config(DAVPT, dict(opts))
    cfg.merge_from_dict({
        'train_cfg.max_iters': iters, 'train_cfg.val_interval': iters,
        'default_hooks.checkpoint.interval': iters,
        'train_dataloader.batch_size': 2, 'randomness.seed': 0,
        'work_dir': str(tmp_path)})
    cfg.param_scheduler = []
    if compile_cfg is not None:
        cfg.compile = compile_cfg
    runner = Runner.from_cfg(cfg)
    recorder = LossRecorder()
    runner.register_hook(recorder)
    torch_dynamo.reset()
    runner.train()
    return recorder, runner


@pytest.mark.slow
def test_compiled_segmentor_trains_like_eager_without_recompiling(
        demo_data, tmp_path):
    eager, _ = train_demo(demo_data, tmp_path / 'eager', None)
    compiled, _ = train_demo(demo_data, tmp_path / 'compiled',
                                  dict(backend='eager'))
    assert len(compiled.losses) == len(eager.losses) == 5
    assert eager.graphs == [0] * 5
    assert compiled.graphs[0] > 0  # compile=... took effect
    # The first step compiles; the second may add a graph or two where a
    # data-dependent size (images per drawn class) changes and dynamo makes
    # it symbolic; from then on every step reuses the graphs.
    assert compiled.graphs[1] - compiled.graphs[0] <= 3
    assert compiled.graphs[2:] == [compiled.graphs[1]] * 3
    for e, c in zip(eager.losses, compiled.losses):
        assert e.keys() == c.keys() and 'davpt.loss_prompt' in e
        for k in e:
            assert c[k] == pytest.approx(e[k], rel=1e-4, abs=1e-5), k


@pytest.mark.slow
def test_compiled_classifier_step_and_segmentor_prediction():
    """mmengine compiles ``model.train_step``; the classifier's, with our
    optimizer constructor, equals eager over three steps and compiles only
    in the first. A compiled ``test_step`` of the segmentor predicts as
    eager."""
    from mmengine.optim import build_optim_wrapper
    from mmpretrain.structures import DataSample
    from torch._dynamo.utils import counters

    from mmengine.registry import init_default_scope

    from tests.test_models.test_classifiers.test_cls_model import mapped_model
    init_default_scope('mmpretrain')  # conftest restores the scope
    model, x, y = mapped_model(num_classes=3, num_guided_prompts=2)
    state = copy.deepcopy(model.state_dict())
    optim_cfg = dict(type='OptimWrapper',
                     constructor='TrainableParamsOptimWrapperConstructor',
                     optimizer=dict(type='AdamW', lr=1e-2))
    data = dict(inputs=list(x * 50 + 120),
                data_samples=[DataSample().set_gt_label(int(v)) for v in y])

    def three_steps(step):
        model.load_state_dict(state)
        wrapper = build_optim_wrapper(model, optim_cfg)
        out, graphs = [], []
        for _ in range(3):
            out.append({k: float(v) for k, v in step(data, wrapper).items()})
            graphs.append(counters['stats']['unique_graphs'])
        return out, graphs

    eager, _ = three_steps(model.train_step)
    torch_dynamo.reset()
    counters.clear()
    compiled, graphs = three_steps(
        torch.compile(model.train_step, backend='eager'))
    assert graphs[0] > 0 and graphs[1:] == [graphs[0]] * 2
    for e, c in zip(eager, compiled):
        assert 'davpt.loss_prompt' in e
        for k in e:
            assert c[k] == pytest.approx(e[k], rel=1e-4, abs=1e-5), k

    from mmseg.registry import MODELS as SEG_MODELS

    from tests._tiny import segmentor
    init_default_scope('mmseg')
    torch.manual_seed(0)
    seg = SEG_MODELS.build(segmentor()).eval()
    batch = dict(inputs=[torch.rand(3, 32, 32) * 255 for _ in range(2)])
    ref = seg.test_step(batch)
    compiled_test = torch.compile(seg.test_step, backend='eager')
    for _ in range(2):
        got = compiled_test(batch)
        for a, b in zip(ref, got):
            torch.testing.assert_close(b.seg_logits.data, a.seg_logits.data)
