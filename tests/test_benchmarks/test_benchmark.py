"""Smoke tests of the benchmark suite (tools/benchmark.py,
mmseg_davpt/benchmarks/):
invariants of what it measures, never timings."""
import json

import pytest
import torch

import mmseg_davpt  # noqa: F401
from mmseg_davpt.benchmarks import forward, infer
from mmseg_davpt.benchmarks.common import (SavedTensorBytes, round_robin,
                                           tensor_bytes)
from tools.benchmark import main

VPT_DEMO = 'configs/demo/vpt_setr_vit-tiny_shapes-64x64.py'
DAVPT_DEMO = 'configs/demo/davpt_setr_vit-tiny_shapes-64x64.py'
FAST = ['--repeats', '1', '--warmup', '0', '--threads', '1']


def test_saved_tensor_bytes_hand_built_graph():
    w = torch.nn.Parameter(torch.randn(8, 3))
    x = torch.randn(4, 8, requires_grad=True)
    with SavedTensorBytes(exclude=[w]) as mem:
        y = x @ w  # saves x (4*8*4 B) and w (excluded: a parameter)
        z = y.relu()  # saves its result (4*3*4 B)
        q = x * x  # saves x twice: same storage, counted once
        big = torch.randn(10, 10, requires_grad=True)
        v = big[:2].exp()  # saves its (2, 10) result
        s = (z.sum() + q.sum() + v.sum()) * 1.0
    assert mem.bytes == 4 * 8 * 4 + 4 * 3 * 4 + 2 * 10 * 4
    # a saved view keeps its whole storage alive
    with SavedTensorBytes() as mem2:
        kept = (big[:2] * big[:2]).sum()
        (x.exp() * 2).sum()  # graph dropped at once: nothing stays saved
    assert mem2.bytes == 10 * 10 * 4
    del kept
    assert mem2.bytes == 0
    s.backward()  # the hooks hand the tensors back unchanged
    assert torch.allclose(w.grad, x.detach().t() @ (y > 0).float())


def test_tensor_bytes_dedups_storage():
    t = torch.zeros(5, 4)
    assert tensor_bytes([t, t[1:], t.view(-1)]) == 80


def test_round_robin_interleaves_and_drops_warmup():
    calls = []
    times = round_robin({'a': lambda: calls.append('a'),
                         'b': lambda: calls.append('b')}, warmup=1, repeats=2)
    assert calls == ['a', 'b', 'b', 'a', 'a', 'b']  # reversed every other
    assert [len(v) for v in times.values()] == [2, 2]
    with pytest.raises(ValueError):
        round_robin({}, warmup=0, repeats=0)


def test_forward_setup_zero_prompts_matches_mmseg_vit():
    kwargs = forward.vit_kwargs(embed_dims=64, num_heads=4, num_layers=2,
                                img_size=32)
    ref = forward.build_reference(kwargs)
    ours = forward.build_prompted(kwargs, ref.state_dict())
    assert ours.state_dict().keys() == ref.state_dict().keys()
    x = torch.randn(2, 3, 32, 32)
    assert forward.max_output_diff(ref, ours, x) < 1e-5
    prompted = forward.build_prompted(kwargs, ref.state_dict(),
                                      num_prompts=20, guided_layers=(-1, ),
                                      num_guided_prompts=10)
    assert prompted.prompt_counts == [20, 10]
    for k, v in ref.state_dict().items():
        assert torch.equal(prompted.state_dict()[k], v)


def test_token_ratio():
    # ViT-L/16 at 512x512: 1024 patches + [CLS]
    assert forward.token_ratio(1024, 20) == pytest.approx(1045 / 1025)
    lin, att = forward.layout_ratio(1024, [20, 10])
    assert lin == pytest.approx((1045 + 1035) / 2 / 1025)
    assert att == pytest.approx(((1045 / 1025)**2 + (1035 / 1025)**2) / 2)


def test_forward_cli_writes_json_and_markdown(tmp_path):
    js, md = tmp_path / 'f.json', tmp_path / 'f.md'
    main(['forward', '--layers', '1', '--img-size', '32', '--vitb-img-size',
          '32', '--batch', '1', *FAST, '--json', str(js), '--markdown',
          str(md)])
    data = json.loads(js.read_text())
    assert data['command'] == 'forward'
    assert {'cpu', 'torch', 'threads', 'device'} <= set(data['machine'])
    assert len(data['tables']) == 3
    rec = data['tables'][0]['records']
    assert {r['mode'] for r in rec} == {'fwd', 'fwd+bwd'}
    assert all(r['ratio'] == 1.0 for r in rec[::2])  # baseline rows
    text = md.read_text()
    assert '| model | mode | median s | min s |' in text
    assert 'max |diff|' in text


def test_train_cli_memory_invariants(tmp_path):
    js, md = tmp_path / 't.json', tmp_path / 't.md'
    main(['train', VPT_DEMO, DAVPT_DEMO, '--img-size', '32', '--batch', '2',
          '--modes', 'base', 'cp', 'amp', *FAST, '--json', str(js),
          '--markdown', str(md)])
    data = json.loads(js.read_text())
    recs = {(r['config'], r['mode']): r
            for r in data['tables'][0]['records']}
    assert len(recs) == 6 and recs[(VPT_DEMO, 'base')]['ratio'] == 1.0
    for cfg in (VPT_DEMO, DAVPT_DEMO):
        base, cp = recs[(cfg, 'base')], recs[(cfg, 'cp')]
        mb, mc = base['memory_bytes'], cp['memory_bytes']
        # parameters, gradients and optimizer state do not depend on mode
        assert mb['state'] == mc['state'] == \
            recs[(cfg, 'amp')]['memory_bytes']['state']
        # AdamW: gradient + two moments per trainable float32 weight
        assert mb['grads'] == 4 * base['trainable']
        assert mb['optim_state'] == 2 * mb['grads']
        assert mb['total'] == mb['saved'] + mb['state']
        # checkpointing keeps less for backward (inputs + one layer)
        assert 0 < mc['saved'] + mc['recompute'] < mb['saved']
    assert '| config | mode |' in md.read_text()


def test_guidance_off_twin_only_for_guided_configs(tmp_path):
    js = tmp_path / 'twin.json'
    main(['train', VPT_DEMO, '--img-size', '32', '--batch', '2', *FAST,
          '--guidance-off-twin', '--json', str(js)])
    res = json.loads(js.read_text())['tables'][0]['records']
    assert [r['config'] for r in res] == [VPT_DEMO]  # VPT has no guidance
    assert {'median_s', 'ratio', 'trainable', 'times_s'} <= set(res[0])
    with pytest.raises(SystemExit):  # a subcommand is required
        main([VPT_DEMO, '--img-size', '32'])


def test_kmeans_cli(tmp_path):
    js = tmp_path / 'k.json'
    main(['kmeans', *FAST, '--json', str(js)])
    rec = json.loads(js.read_text())['tables'][0]['records']
    assert {(r['classes'], r['dims'], r['prompts']) for r in rec} == {
        (150, 1024, 10), (60, 1024, 10), (1000, 768, 20)}
    assert {r['refresh'] for r in rec} == {'first', 'warm'}
    cls = [r for r in rec if r['classes'] == 1000][0]
    assert cls['interval_iters'] == 800 // 32


def test_infer_cli(tmp_path):
    assert infer.windows(512, 683, (512, 512), (341, 341)) == 2
    js = tmp_path / 'i.json'
    main(['infer', VPT_DEMO, '--img-size', '32', *FAST, '--json', str(js)])
    rec = json.loads(js.read_text())['tables'][0]['records']
    assert rec[0]['windows_per_image'] == 2 and rec[0]['images_per_s'] > 0


def test_bad_arguments():
    with pytest.raises(SystemExit):
        main(['forward', '--img-size', '100'])
    with pytest.raises(SystemExit):
        main(['kmeans', '--repeats', '0'])
    with pytest.raises(ValueError, match='unknown --modes'):
        main(['train', VPT_DEMO, '--img-size', '32', '--modes', 'fp8',
              *FAST])


def test_forward_dinov2_layout_counts_registers_as_prefix(tmp_path):
    """``--dinov2``: patch 14 (28 px -> 2x2 patches), [CLS] + 2 registers
    before the patches; no mmseg pair; the limit counts the prefix."""
    js = tmp_path / 'd.json'
    main(['forward', '--dinov2', '--registers', '2', '--layers', '1',
          '--img-size', '28', '--vitb-img-size', '0', '--batch', '1', *FAST,
          '--json', str(js)])
    data = json.loads(js.read_text())
    assert len(data['tables']) == 1
    assert 'DINOv2-L/14, 2 registers' in data['tables'][0]['title']
    prompted = data['tables'][0]['records'][1]
    # one layer = the guided one: 10 prompts over 3 prefix + 4 patches
    assert prompted['limit'] == pytest.approx((3 + 4 + 10) / (3 + 4))
    assert forward.token_ratio(1369, 20, 5) == pytest.approx(1394 / 1374)
