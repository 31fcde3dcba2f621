"""The prompted ViT in mmpretrain and the DA-VPT classifier."""
import copy
import re

import pytest
import torch
from mmengine.config import ConfigDict
from mmengine.registry import DefaultScope, init_default_scope

import mmseg_davpt  # noqa: F401
from mmseg_davpt.models.backbones.vit_checkpoint import mmpretrain_to_mmseg
from mmseg_davpt.models.losses import proxy_anchor_loss

pytest.importorskip('mmpretrain')
from mmpretrain.models.backbones import VisionTransformer  # noqa: E402
from mmpretrain.registry import MODELS  # noqa: E402
from mmpretrain.structures import DataSample  # noqa: E402

TINY_ARCH = dict(embed_dims=64, num_layers=3, num_heads=4,
                 feedforward_channels=256)


@pytest.fixture(autouse=True)
def _mmpretrain_scope():
    """Every test here builds from mmpretrain's registry."""
    with DefaultScope.overwrite_default_scope('mmpretrain'):
        yield


def prompted_backbone(**kwargs):
    cfg = dict(type='PromptedVisionTransformer', img_size=32, patch_size=8,
               embed_dims=64, num_layers=3, num_heads=4, mlp_ratio=4,
               patch_bias=True, norm_cfg=dict(type='LN', eps=1e-6),
               final_norm=True, out_type='cls_token', out_indices=-1,
               num_prompts=0)
    cfg.update(kwargs)
    return cfg


def reference_vit(arch=TINY_ARCH, img_size=32, patch_size=8, seed=0):
    torch.manual_seed(seed)
    vit = VisionTransformer(arch=arch, img_size=img_size,
                            patch_size=patch_size, out_type='cls_token')
    vit.init_weights()
    # random non-zero biases and LN affine: a test that a wrong key mapping
    # cannot pass by zeros
    with torch.no_grad():
        for name, p in vit.named_parameters():
            if name.endswith('bias') or 'ln' in name:
                p.add_(torch.randn_like(p) * 0.1)
    vit.eval()  # mmpretrain's train() returns None
    return vit


def save_mmpretrain_checkpoint(vit, path):
    """As mmpretrain saves a classifier: ``state_dict`` with ``backbone.``
    and ``head.`` keys."""
    state = {f'backbone.{k}': v for k, v in vit.state_dict().items()}
    state['head.fc.weight'] = torch.zeros(10, vit.embed_dims)
    torch.save(dict(meta=dict(), state_dict=state), path)


def test_registered_in_both_registries():
    from mmseg.registry import MODELS as SEG_MODELS
    assert MODELS.get('PromptedVisionTransformer') is \
        SEG_MODELS.get('PromptedVisionTransformer')
    assert MODELS.get('DAVPTImageClassifier') is not None


def test_mmpretrain_checkpoint_loads_with_zero_missing_or_unexpected_keys(
        tmp_path):
    vit = reference_vit()
    path = str(tmp_path / 'vit.pth')
    save_mmpretrain_checkpoint(vit, path)
    init_default_scope('mmpretrain')
    ours = MODELS.build(prompted_backbone(num_prompts=4))
    report = ours.load_pretrained(path)  # prefix 'backbone.' is guessed
    assert report['missing'] == [] and report['unexpected'] == []
    # only the prompts are new
    assert sorted(report['new']) == [f'prompts.{i}' for i in range(3)]


@pytest.mark.parametrize('arch,img,patch', [
    (TINY_ARCH, 32, 8),
    # ViT-B width and heads (fewer layers keep it fast), 224 / 16
    (dict(embed_dims=768, num_layers=2, num_heads=12,
          feedforward_channels=3072), 224, 16),
])
def test_zero_prompts_cls_output_equals_mmpretrain_vit(tmp_path, arch, img,
                                                       patch):
    vit = reference_vit(arch, img, patch)
    path = str(tmp_path / 'vit.pth')
    save_mmpretrain_checkpoint(vit, path)
    ours = MODELS.build(
        prompted_backbone(img_size=img, patch_size=patch,
                          embed_dims=arch['embed_dims'],
                          num_layers=arch['num_layers'],
                          num_heads=arch['num_heads'],
                          init_cfg=dict(type='Pretrained', checkpoint=path)))
    ours.init_weights()
    ours.eval()
    x = torch.randn(2, 3, img, img)
    with torch.no_grad():
        expected = vit(x)[-1]
        got = ours(x)[-1]
    assert got.shape == expected.shape == (2, arch['embed_dims'])
    assert (got - expected).abs().max().item() <= 1e-4


def test_timm_layout_gives_the_same_model(tmp_path):
    """mmpretrain weights renamed to timm's layout by hand load into the same
    backbone (the route of the ImageNet-21k ViT-B/16 weights)."""
    vit = reference_vit()
    timm = {}
    for k, v in vit.state_dict().items():
        k = k.replace('patch_embed.projection', 'patch_embed.proj')
        k = re.sub(r'^layers\.', 'blocks.', k)
        k = k.replace('.ln1.', '.norm1.').replace('.ln2.', '.norm2.')
        k = k.replace('ffn.layers.0.0', 'mlp.fc1')
        k = k.replace('ffn.layers.1', 'mlp.fc2')
        k = 'norm.' + k[4:] if k.startswith('ln1.') else k
        timm[k] = v
    timm['head.weight'] = torch.zeros(3, 64)
    path = str(tmp_path / 'timm.pth')
    torch.save(timm, path)
    ours = MODELS.build(prompted_backbone(
        init_cfg=dict(type='Pretrained', checkpoint=path)))
    ours.init_weights()
    ours.eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(ours(x)[-1], vit(x)[-1], atol=1e-4)


def classifier_cfg(num_classes=3, num_guided_prompts=5, guidance=True,
                   guidance_cfg=None, **backbone):
    cfg = dict(
        type='DAVPTImageClassifier',
        data_preprocessor=dict(mean=[0., 0., 0.], std=[1., 1., 1.]),
        backbone=prompted_backbone(num_prompts=4, guided_layers=(-1, ),
                                   num_guided_prompts=num_guided_prompts,
                                   **backbone),
        head=dict(type='LinearClsHead', num_classes=num_classes,
                  in_channels=64))
    if guidance:
        cfg['metric_guidance'] = dict(type='ClsMetricGuidance',
                                      **(guidance_cfg or {}))
    return ConfigDict(cfg)


def samples(labels):
    return [DataSample().set_gt_label(int(y)) for y in labels]


def mapped_model(num_classes=3, num_guided_prompts=5, **kwargs):
    torch.manual_seed(0)
    model = MODELS.build(classifier_cfg(num_classes, num_guided_prompts,
                                        **kwargs))
    model.init_weights()
    x = torch.randn(2 * num_classes, 3, 32, 32)
    y = torch.arange(num_classes).repeat(2)
    model.collect_class_features(x, samples(y))
    model.refresh_class_mapping()
    return model, x, y


def test_fewer_classes_than_prompts_leave_extra_prompts_unassigned():
    model, _, _ = mapped_model(num_classes=3, num_guided_prompts=5)
    mapping = model.metric_guidance.mapping
    assert sorted(mapping.class_to_prompt.tolist()) == [0, 1, 2]
    assert mapping.num_unassigned_prompts() == 2


def test_loss_terms_match_proxy_anchor_on_assigned_prompts_only():
    model, x, y = mapped_model(num_classes=3, num_guided_prompts=5)
    model.train()
    model.backbone.prompt_dropout.p = 0.
    losses = model.loss(x, samples(y))
    assert {'loss', 'davpt.loss_prompt', 'davpt.loss_cls'} <= set(losses)

    # Independent recomputation: tokens of the last layer, W_q without bias,
    # labels through the mapping, proxies = the 3 assigned prompts only.
    backbone = model.backbone
    _, taps = backbone.forward_with_taps(x)
    tap = taps[2]
    # checkpoint keys (stable), not module internals
    state = backbone.state_dict()
    w_q = state['layers.2.attn.attn.in_proj_weight'][:64]
    prompts = state['prompts.2']
    mapping = model.metric_guidance.mapping.class_to_prompt
    assigned = sorted(set(mapping.tolist()))
    proxies = prompts[assigned] @ w_q.T
    relabel = {p: i for i, p in enumerate(assigned)}
    labels = torch.tensor([relabel[int(mapping[c])] for c in y])
    patches = tap.context[:, 1 + tap.num_prompt_tokens:]
    tokens = (patches @ w_q.T).flatten(0, 1)
    expected_p = proxy_anchor_loss(
        tokens, labels.repeat_interleave(patches.shape[1]), proxies)
    expected_cls = proxy_anchor_loss(tap.context[:, 0] @ w_q.T, labels,
                                     proxies)
    assert torch.allclose(losses['davpt.loss_prompt'], 0.05 * expected_p,
                          atol=1e-5)
    assert torch.allclose(losses['davpt.loss_cls'], 0.05 * expected_cls,
                          atol=1e-5)
    # the 2 extra prompts would change the value as negatives: they are
    # really left out
    all_proxies = prompts @ w_q.T
    all_labels = mapping[y]
    with_extra = proxy_anchor_loss(tap.context[:, 0] @ w_q.T, all_labels,
                                   all_proxies)
    assert not torch.allclose(with_extra, expected_cls, atol=1e-3)


def test_released_settings_on_the_real_backbone_taps():
    """The released code's vectors (feature='raw',
    token_source='block_input', cls_source='attention_query') end to end: L_p compares each image's mean
    block-input patch token, L_cls the attention's [CLS] query (bias
    included), both with the raw prompts, scaled by similarity_scale."""
    scaled = dict(type='ProxyAnchorLoss', similarity_scale=5.0)
    model, x, y = mapped_model(
        num_classes=3, num_guided_prompts=5,
        guidance_cfg=dict(feature='raw', token_source='block_input',
                          cls_source='attention_query', pooling='image_mean',
                          loss_prompt=dict(scaled, loss_weight=0.05),
                          loss_cls=dict(scaled, loss_weight=0.05)))
    model.train()
    model.backbone.prompt_dropout.p = 0.
    losses = model.loss(x, samples(y))
    backbone = model.backbone
    _, taps = backbone.forward_with_taps(x)
    tap = taps[2]
    state = backbone.state_dict()
    layer = backbone.layers[2]
    h = layer.ln1(tap.block_input)
    query = h @ state['layers.2.attn.attn.in_proj_weight'][:64].T + \
        state['layers.2.attn.attn.in_proj_bias'][:64]
    mapping = model.metric_guidance.mapping.class_to_prompt
    assigned = sorted(set(mapping.tolist()))
    proxies = state['prompts.2'][assigned]
    relabel = {p: i for i, p in enumerate(assigned)}
    labels = torch.tensor([relabel[int(mapping[c])] for c in y])

    def scaled_loss(samples_):
        # a similarity scale s multiplies every cosine: the same as
        # Proxy-Anchor with alpha * s and margin / s
        return proxy_anchor_loss(samples_, labels, proxies, margin=0.1 / 5,
                                 alpha=32. * 5)

    patch_mean = tap.block_input[:, 1 + tap.num_prompt_tokens:].mean(1)
    assert torch.allclose(losses['davpt.loss_prompt'],
                          0.05 * scaled_loss(patch_mean), atol=1e-5)
    assert torch.allclose(losses['davpt.loss_cls'],
                          0.05 * scaled_loss(query[:, 0]), atol=1e-5)


def test_mapping_uses_cls_features_and_kmeans_when_more_classes():
    model, _, _ = mapped_model(num_classes=8, num_guided_prompts=3)
    mapping = model.metric_guidance.mapping.class_to_prompt
    assert mapping.min() >= 0 and set(mapping.tolist()) == {0, 1, 2}


def test_bad_label_is_a_clear_error():
    model, x, _ = mapped_model(num_classes=3)
    with pytest.raises(ValueError, match='image label 7 is outside'):
        model.loss(x[:1], samples([7]))


def test_vpt_classifier_is_image_classifier_behaviour():
    from mmpretrain.models.classifiers import ImageClassifier
    torch.manual_seed(0)
    cfg = classifier_cfg(guidance=False)
    ours = MODELS.build(cfg)
    plain_cfg = copy.deepcopy(cfg)
    plain_cfg.type = 'ImageClassifier'
    plain = MODELS.build(plain_cfg)
    assert isinstance(ours, ImageClassifier)
    plain.load_state_dict(ours.state_dict())
    ours.eval()
    plain.eval()
    x = torch.randn(2, 3, 32, 32)
    y = samples([0, 2])
    torch.testing.assert_close(ours.loss(x, y), plain.loss(x, y))
    assert torch.equal(ours.predict(x)[0].pred_score,
                       plain.predict(x)[0].pred_score)


def test_mixup_with_guidance_is_rejected():
    cfg = classifier_cfg()
    cfg.train_cfg = dict(augments=dict(type='Mixup', alpha=0.8))
    with pytest.raises(ValueError, match='one label per image'):
        MODELS.build(cfg)
