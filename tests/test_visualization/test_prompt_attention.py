"""Prompt attention maps (mmseg_davpt/visualization/prompt_attention.py) and
tools/visualize_prompt_attention.py on the DA-VPT demo model."""
import os
import os.path as osp

import pytest
import torch

from mmseg_davpt.visualization import (default_layers, prompt_attention_maps,
                                       prompt_class_names, token_labels)
from tests.test_peft.test_peft import (DAVPT, build_demo_model,
                                       demo_image, make_checkpoints,
                                       model_input, simulate_training)


@pytest.fixture(scope='module')
def model(demo_data):
    _, vit = demo_data
    model = simulate_training(build_demo_model(vit))
    model.dataset_meta = dict(
        classes=('background', 'disc', 'square', 'triangle', 'ring'))
    return model.eval()


@pytest.fixture(scope='module')
def inputs(model, demo_data):
    return model_input(model, demo_image(demo_data[0]))


def test_maps_are_patch_columns_of_probability_rows(model, inputs):
    maps = prompt_attention_maps(model, inputs, [3, 1, -3])
    assert sorted(maps) == [1, 3]  # -3 is layer 1
    # [CLS] + 3 guided prompts in layer 3, [CLS] + 4 prompts in layer 1,
    # over the 8x8 patch grid of a 64x64 input
    assert maps[3].shape == (4, 8, 8) and maps[1].shape == (5, 8, 8)
    with torch.no_grad():
        _, taps = model.backbone.forward_with_taps(inputs, tap_layers=(),
                                                   weight_layers=(1, 3))
    for layer, layer_maps in maps.items():
        weights = taps[layer].weights[0].mean(0)  # (T, T) head mean
        first_patch = 1 + taps[layer].num_prompt_tokens
        rows = weights[:first_patch]
        # each query row is a distribution over all keys ...
        torch.testing.assert_close(rows.sum(-1), torch.ones(first_patch))
        # ... and a map is its patch part: at most one, the rest on
        # [CLS] / prompts
        patch_mass = layer_maps.flatten(1).sum(-1)
        assert (patch_mass <= 1 + 1e-6).all() and (patch_mass > 0).all()
        torch.testing.assert_close(
            patch_mass, 1 - rows[:, :first_patch].sum(-1))
        torch.testing.assert_close(layer_maps.flatten(1),
                                   rows[:, first_patch:])
        assert (layer_maps >= 0).all()


def test_defaults_odd_sizes_and_bad_input(model, inputs):
    assert default_layers(model) == [3]  # the guided layer
    assert list(prompt_attention_maps(model, inputs)) == [3]
    # 60x44 is padded to whole patches: an 8x6 grid
    odd = torch.randn(1, 3, 60, 44)
    assert prompt_attention_maps(model, odd, [3])[3].shape == (4, 8, 6)
    with pytest.raises(ValueError, match=r'layer 4 is out of range: this '
                       r'ViT has 4 layers \(0\.\.3, or -4\.\.-1\)'):
        prompt_attention_maps(model, inputs, [4])
    with pytest.raises(ValueError, match='takes one image'):
        prompt_attention_maps(model, inputs.expand(2, -1, -1, -1), [3])


def test_labels_follow_the_mapping(model):
    # simulate_training maps disc and ring to prompt 0, background nowhere
    assert prompt_class_names(model) == [['disc', 'ring'], ['square'],
                                         ['triangle']]
    labels = token_labels(model, 3, 4)
    assert [r['token'] for r in labels] == ['[CLS]', 'prompt 0', 'prompt 1',
                                            'prompt 2']
    assert [r['classes'] for r in labels] == [[], ['disc', 'ring'],
                                              ['square'], ['triangle']]
    # a prompt no class maps to, and a layer without guidance
    model.metric_guidance.mapping.class_to_prompt[3] = 1
    try:
        assert token_labels(model, -1, 4)[3]['classes'] == ['unassigned']
    finally:
        model.metric_guidance.mapping.class_to_prompt[3] = 2
    assert all(r['classes'] == [] for r in token_labels(model, 1, 5))


def test_cli_writes_one_png_per_token_and_layer(demo_data, tmp_path, capsys):
    from PIL import Image

    from tools.visualize_prompt_attention import main
    data_root, vit = demo_data
    _, peft, _ = make_checkpoints(str(tmp_path), vit)
    image = osp.join(data_root, 'img_dir/val/0001.png')
    out = tmp_path / 'maps'
    main([DAVPT, peft, image, '--layers', '3', '1', '--out-dir', str(out),
          '--cfg-options', f'model.backbone.init_cfg.checkpoint={vit}'])
    printed = capsys.readouterr().out
    pngs = sorted(os.listdir(out))
    assert len(pngs) == 1 * (3 + 1) + 1 * (4 + 1)  # layers x (prompts + CLS)
    assert pngs[:5] == ['layer01_cls.png'] + [
        f'layer01_prompt0{k}.png' for k in range(4)]
    assert pngs[5:] == ['layer03_cls.png', 'layer03_prompt00_disc+ring.png',
                        'layer03_prompt01_square.png',
                        'layer03_prompt02_triangle.png']
    assert 'layer 3, prompt 0: disc, ring' in printed  # the figure titles
    assert 'layer 1, prompt 2 (layer not guided)' in printed
    with Image.open(out / 'layer03_prompt00_disc+ring.png') as png:
        assert png.size[0] >= 300 and png.size[1] >= 300
    with pytest.raises(ValueError, match='cannot read .* as an image'):
        main([DAVPT, peft, __file__, '--out-dir', str(out)])
    with pytest.raises(FileNotFoundError, match='no image at'):
        main([DAVPT, peft, str(tmp_path / 'none.png')])
