"""SegMetricGuidance: patch labels, class sampling, and the DA-VPT segmentor
loss on a tiny model."""
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from mmseg.utils import register_all_modules

import mmseg_davpt  # noqa: F401
from mmseg_davpt.models import SegMetricGuidance
from mmseg_davpt.models.guidance import NO_PROMPT
from tests._tiny import NUM_CLASSES, segmentor
from tests.test_models.test_losses.test_proxy_anchor_loss import \
    loop_reference

register_all_modules()


def guidance(**kwargs):
    cfg = dict(num_classes=NUM_CLASSES, embed_dims=8, guided_layers=(2, ),
               num_guided_prompts=3, background_classes=(0, ))
    cfg.update(kwargs)
    return SegMetricGuidance(**cfg)


def test_patch_labels_take_patch_centres_and_drop_ignore_and_background():
    gt = torch.zeros(1, 16, 16, dtype=torch.long)
    gt[0, :8, :8] = 3            # patch (0, 0) -> 3
    gt[0, :8, 8:] = 255          # patch (0, 1) -> ignore
    gt[0, 8:, :8] = 0            # patch (1, 0) -> background
    gt[0, 8:, 8:] = 2
    gt[0, 12, 12] = 4            # centre pixel of patch (1, 1) decides
    labels = guidance().patch_labels(gt, (2, 2), 8)
    assert labels.tolist() == [[3, -1, -1, 4]]


def test_patch_labels_of_padded_patches_are_ignored():
    # 20 px with 8 px patches: 3 patches, the last centre (20) is padding
    gt = torch.full((1, 20, 20), 2, dtype=torch.long)
    labels = guidance().patch_labels(gt, (3, 3), 8).view(3, 3)
    assert labels[:2, :2].eq(2).all()
    assert labels[2].eq(-1).all() and labels[:, 2].eq(-1).all()


def test_patch_labels_reject_ids_beyond_num_classes():
    gt = torch.full((1, 16, 16), 7, dtype=torch.long)
    with pytest.raises(ValueError, match='class id 7 outside'):
        guidance().patch_labels(gt, (2, 2), 8)


def test_sampling_picks_only_present_classes_uniformly():
    torch.manual_seed(0)
    g = guidance()
    labels = torch.tensor([[1, 1, 1, 1, 1, 1, 3, -1],
                           [-1, -1, -1, -1, -1, -1, -1, -1],
                           [2, 2, 2, 2, 2, 2, 2, 2]])
    draws = torch.stack([g.sample_targets(labels) for _ in range(2000)])
    assert set(draws[:, 0].tolist()) == {1, 3}
    # uniform over present classes, not weighted by area
    assert abs((draws[:, 0] == 3).float().mean().item() - 0.5) < 0.05
    assert set(draws[:, 1].tolist()) == {-1}
    assert set(draws[:, 2].tolist()) == {2}


@pytest.mark.parametrize('kwargs, match', [
    (dict(guided_layers=()), 'needs guided layers'),
    (dict(feature='key'), 'feature must be one of'),
    (dict(pooling='max'), 'pooling must be one of'),
    (dict(pooling='tokens'), 'pooling must be one of'),
    (dict(background_classes=(9, )), r'background_classes \[9\]'),
    (dict(background_classes=tuple(range(NUM_CLASSES))), 'every class is a '
     'background'),
    (dict(num_guided_prompts=0), 'at least one guided prompt'),
])
def test_bad_settings_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        guidance(**kwargs)


def make_batch(model, labels_fn, batch=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    inputs = torch.rand(batch, 3, 32, 32, generator=g)
    samples = []
    for b in range(batch):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=labels_fn(b)[None])
        sample.set_metainfo(dict(img_shape=(32, 32), pad_shape=(32, 32),
                                 ori_shape=(32, 32)))
        samples.append(sample)
    return inputs, samples


def two_class_labels(b):
    lab = torch.zeros(32, 32, dtype=torch.long)
    lab[:16] = 1 + b
    lab[16:, :16] = 3
    return lab


def initialised_model(**kwargs):
    torch.manual_seed(0)
    model = MODELS.build(segmentor(**kwargs))
    model.init_weights()
    inputs, samples = make_batch(model, two_class_labels)
    model.collect_class_features(inputs, samples)
    stats = model.refresh_class_mapping()
    return model, inputs, samples, stats


def test_segmentor_loss_has_both_terms_and_prompts_get_gradient():
    model, inputs, samples, stats = initialised_model()
    assert stats['seen_classes'] == 3  # classes 1, 2, 3 (0 is background)
    losses = model.loss(inputs, samples)
    assert {'decode.loss_ce', 'aux_0.loss_ce', 'davpt.loss_prompt',
            'davpt.loss_cls'} <= set(losses)
    for k in ('davpt.loss_prompt', 'davpt.loss_cls'):
        assert torch.isfinite(losses[k]) and losses[k].item() > 0
    # The metric loss alone reaches the guided prompts (as proxies) and the
    # earlier prompts (through the tokens it compares).
    (losses['davpt.loss_prompt'] + losses['davpt.loss_cls']).backward()
    for layer in (0, 1, 2):
        grad = model.backbone.layer_prompts(layer).grad
        assert grad is not None and grad.abs().sum() > 0, layer


def one_class_labels(b):
    """Top half class ``1 + b``, bottom half background (class 0): one
    target class per image, so no random draw."""
    lab = torch.zeros(32, 32, dtype=torch.long)
    lab[:16] = 1 + b
    return lab


@pytest.mark.parametrize('feature', ['query', 'raw'])
@pytest.mark.parametrize('pooling', ['class_masked', 'image_mean'])
def test_config_options_decide_the_metric_losses(feature, pooling):
    # feature, pooling and every loss setting come from the config; the
    # expectation recomputes both terms from the guided layer's tokens
    torch.manual_seed(0)
    cfg = segmentor()
    cfg.metric_guidance.update(
        feature=feature, pooling=pooling,
        loss_prompt=dict(type='ProxyAnchorLoss', margin=0.2, alpha=16.,
                         similarity_scale=2., loss_weight=0.5),
        loss_cls=dict(type='ProxyAnchorLoss', margin=0.3, alpha=8.,
                      loss_weight=3.))
    model = MODELS.build(cfg)
    model.init_weights()
    inputs, samples = make_batch(model, one_class_labels)
    model.collect_class_features(inputs, samples)
    model.refresh_class_mapping()
    losses = model.loss(inputs, samples)

    layer = model.backbone.num_layers - 1  # the tiny model's guided layer
    _, taps = model.backbone.forward_with_taps(inputs)
    context = taps[layer].context.detach()  # (2, 1 + 3 + 16, D)
    w_q = model.backbone.layers[layer].attn.attn.in_proj_weight[:64].detach()

    def space(v):
        return v @ w_q.T if feature == 'query' else v

    prompt_of = model.metric_guidance.mapping.class_to_prompt.tolist()
    assigned = sorted({p for p in prompt_of if p != NO_PROMPT})
    rows = torch.tensor([assigned.index(prompt_of[c]) for c in (1, 2)])
    proxies = space(model.backbone.layer_prompts(layer).detach()[assigned])
    patches = context[:, 4:]
    if pooling == 'image_mean':  # one sample per image: all its patches
        tokens, labels = patches.mean(1), rows
    else:  # the class's patches: rows 0-1 of the 4x4 grid
        tokens, labels = patches[:, :8].flatten(0, 1), \
            rows.repeat_interleave(8)
    exp_p = 0.5 * loop_reference(space(tokens), labels, proxies, 0.2, 16.,
                                 scale=2.)
    exp_cls = 3. * loop_reference(space(context[:, 0]), rows, proxies, 0.3,
                                  8.)
    assert losses['davpt.loss_prompt'].item() == pytest.approx(exp_p,
                                                               rel=1e-4)
    assert losses['davpt.loss_cls'].item() == pytest.approx(exp_cls,
                                                            rel=1e-4)


def test_batch_without_valid_class_gives_zero_metric_loss_not_nan():
    model, _, _, _ = initialised_model()
    inputs, samples = make_batch(
        model, lambda b: torch.full((32, 32), 255 if b else 0,
                                    dtype=torch.long))
    losses = model.loss(inputs, samples)
    assert losses['davpt.loss_prompt'].item() == 0.
    assert losses['davpt.loss_cls'].item() == 0.
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters()
               if p.grad is not None)


def test_loss_before_mapping_is_a_clear_error():
    model = MODELS.build(segmentor())
    inputs, samples = make_batch(model, two_class_labels)
    with pytest.raises(RuntimeError, match='ClassPromptMappingHook'):
        model.loss(inputs, samples)


def test_vpt_baseline_has_no_metric_terms():
    model = MODELS.build(segmentor(metric_guidance=False))
    inputs, samples = make_batch(model, two_class_labels)
    assert not any(k.startswith('davpt') for k in model.loss(inputs, samples))


def test_mapping_is_model_state_in_checkpoints():
    model, _, _, _ = initialised_model()
    state = model.state_dict()
    key = 'metric_guidance.mapping.class_to_prompt'
    assert key in state and 'metric_guidance.mapping.centroids' in state
    fresh = MODELS.build(segmentor())
    assert not fresh.class_mapping_initialized
    fresh.load_state_dict(state)
    assert fresh.class_mapping_initialized
    assert torch.equal(fresh.metric_guidance.mapping.class_to_prompt,
                       state[key])


def test_loss_does_not_touch_statistics_the_model_accumulates_them():
    model, inputs, samples, _ = initialised_model()
    mapping = model.metric_guidance.mapping
    assert mapping.feat_count.sum() == 0  # reset by the refresh
    _, taps = model.backbone.forward_with_taps(inputs)
    gt = torch.stack([s.gt_sem_seg.data[0] for s in samples])
    model.metric_guidance.loss(taps, gt)
    assert mapping.feat_count.sum() == 0
    model.loss(inputs, samples)
    # 2 images of 4x4 patches, the top half (8 patches) of class 1 or 2 and
    # 4 patches of class 3; class 0 is background
    assert mapping.feat_count.tolist() == [0., 8., 8., 8., 0.]


def test_model_refresh_clusters_query_projected_class_means():
    model, inputs, samples, _ = initialised_model()
    guidance = model.metric_guidance
    model.collect_class_features(inputs, samples)
    seen, raw = guidance.mapping.class_means()
    projected = raw @ model.backbone.query_weight(guidance.mapping_layer).T
    # what the model passes on: same classes, means through W_q
    calls = []
    guidance.mapping.assign = lambda s, m: calls.append((s, m)) or {}
    model.refresh_class_mapping()
    assert torch.equal(calls[0][0], seen)
    assert torch.allclose(calls[0][1], projected)
    guidance.feature = 'raw'
    model.refresh_class_mapping()
    assert torch.equal(calls[1][1], raw)


def test_inference_is_encoder_decoder_behaviour():
    model, inputs, samples, _ = initialised_model()
    model.eval()
    with torch.no_grad():
        out = model.predict(inputs, samples)
        logits = model.encode_decode(inputs, [s.metainfo for s in samples])
    assert out[0].pred_sem_seg.data.shape == (1, 32, 32)
    assert torch.equal(out[0].pred_sem_seg.data[0], logits[0].argmax(0))


def test_non_finite_loss_stops_before_the_optimizer_step():
    model, inputs, samples, _ = initialised_model()
    losses = model.loss(inputs, samples)
    losses['aux_1.loss_ce'] = losses['aux_1.loss_ce'] * float('nan')
    with pytest.raises(FloatingPointError, match='non-finite aux_1.loss_ce'):
        model.parse_losses(losses)
    model.check_finite_loss = False
    total, _ = model.parse_losses(losses)
    assert torch.isnan(total)


def test_logged_guidance_scalars():
    model, inputs, samples, _ = initialised_model()
    losses = model.loss(inputs, samples)
    assert losses['davpt.img_frac'].item() == 1.0
    # 3 classes seen for 3 guided prompts: every prompt has a class
    assert losses['davpt.unassigned_prompts'].item() == 0.
    _, log_vars = model.parse_losses(losses)
    assert 'davpt.img_frac' in log_vars
    # scalars are logged, not optimised
    expected = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.allclose(model.parse_losses(losses)[0], expected)


def test_fp16_inputs_to_the_metric_loss_stay_finite():
    from mmseg_davpt.models import proxy_anchor_loss
    big = torch.full((4, 8), 6e4, dtype=torch.float16)
    big[1] = -6e4
    proxies = torch.randn(3, 8).half()
    with torch.autocast('cpu', dtype=torch.bfloat16):
        loss = proxy_anchor_loss(big, torch.tensor([0, 1, 2, 0]), proxies)
    assert loss.dtype == torch.float32 and torch.isfinite(loss)


@pytest.mark.parametrize('mode', ['whole', 'slide'])
@pytest.mark.parametrize('hw', [(20, 28), (5, 5), (40, 36)])
def test_inference_on_odd_and_tiny_images(mode, hw):
    cfg = segmentor()
    cfg.test_cfg = dict(mode=mode, crop_size=(32, 32), stride=(16, 16))
    model = MODELS.build(cfg)
    model.init_weights()
    model.eval()
    inputs = torch.rand(1, 3, *hw)
    sample = SegDataSample()
    sample.set_metainfo(dict(img_shape=hw, pad_shape=hw, ori_shape=hw))
    with torch.no_grad():
        out = model.predict(inputs, [sample])
    pred = out[0].pred_sem_seg.data
    assert pred.shape == (1, *hw)
    assert pred.min() >= 0 and pred.max() < NUM_CLASSES


def test_training_on_images_not_a_multiple_of_the_patch():
    model, _, _, _ = initialised_model()
    inputs, samples = make_batch(model, two_class_labels)
    inputs = inputs[:, :, :28, :20]
    for s in samples:
        s.gt_sem_seg = PixelData(data=s.gt_sem_seg.data[:, :28, :20])
    losses = model.loss(inputs, samples)
    assert all(torch.isfinite(v).all() for k, v in losses.items()
               if 'loss' in k)


def test_seeded_draws_depend_on_the_image_not_the_batch_layout():
    g = guidance()
    labels = torch.tensor([[1, 2, 3, -1], [2, 4, -1, -1], [3, 3, 3, 3]])
    seeds = [11, 22, 33]
    whole = g.sample_targets(labels, seeds)
    split = torch.cat([g.sample_targets(labels[:1], seeds[:1]),
                       g.sample_targets(labels[1:], seeds[1:])])
    assert torch.equal(whole, split)
    assert whole[2] == 3
    draws = {g.sample_targets(labels[:1], [s]).item() for s in range(200)}
    assert draws == {1, 2, 3}
