#!/usr/bin/env python
"""Draw where the prompts look (paper Fig. 3): per layer, one PNG per prompt
and one for [CLS], each the token's head-averaged attention over the patch
grid on top of the image, titled with the classes mapped to the prompt.

    python tools/visualize_prompt_attention.py CONFIG CHECKPOINT IMAGE
        [--layers 3 ...] [--out-dir DIR] [--alpha 0.5] [--cfg-options ...]

CHECKPOINT may be a full or a PEFT checkpoint. Default layers: the
backbone's guided layers (or the last layer). The image is resized to the
backbone's ``img_size``.
"""
import argparse
import os
import os.path as osp
import re
import textwrap


def parse_args(argv=None):
    from mmengine.config import DictAction
    parser = argparse.ArgumentParser(
        description='Prompt attention maps over an image')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='full or PEFT checkpoint')
    parser.add_argument('image', help='image file')
    parser.add_argument('--layers', type=int, nargs='+',
                        help='layer indices (0-based, negative allowed); '
                        'default: the guided layers')
    parser.add_argument('--out-dir', default='work_dirs/prompt_attention',
                        help='where the PNGs go')
    parser.add_argument('--force', action='store_true',
                        help='replace PNGs already in --out-dir')
    parser.add_argument('--alpha', type=float, default=0.5,
                        help='opacity of the attention overlay')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries')
    return parser.parse_args(argv)


def _slug(names, max_len=80):
    """File-name-safe ``a+b+c`` of class names, shortened with ``+Nmore``."""
    parts = [re.sub(r'[^A-Za-z0-9-]+', '-', n).strip('-') or 'x'
             for n in names]
    out = ''
    for i, part in enumerate(parts):
        candidate = f'{out}+{part}' if out else part
        if len(candidate) > max_len:
            return f'{out}+{len(parts) - i}more'
        out = candidate
    return out


def file_name(layer, label):
    """``layer03_cls.png`` / ``layer03_prompt00_disc+ring.png``."""
    if label['prompt'] is None:
        return f'layer{layer:02d}_cls.png'
    name = f'layer{layer:02d}_prompt{label["prompt"]:02d}'
    if label['classes']:
        name += '_' + _slug(label['classes'])
    return name + '.png'


def title(layer, label):
    text = f'layer {layer}, {label["token"]}'
    if label['classes']:
        text += ': ' + ', '.join(label['classes'])
    elif label['prompt'] is not None:
        text += ' (layer not guided)'
    return '\n'.join(textwrap.wrap(text, 48))


def draw(image_rgb, attention, heading, path, alpha=0.5):
    """Save ``attention`` ``(h, w)`` upsampled (bilinear) over
    ``image_rgb`` ``(H, W, 3)`` with a colour bar."""
    import matplotlib
    matplotlib.use('Agg')  # headless: files only
    import matplotlib.pyplot as plt
    import torch.nn.functional as F
    height, width = image_rgb.shape[:2]
    up = F.interpolate(attention[None, None], size=(height, width),
                       mode='bilinear', align_corners=False)[0, 0].numpy()
    fig, ax = plt.subplots(figsize=(4.4, 4.4))
    ax.imshow(image_rgb)
    # colours span the map's own range (attention is often near uniform);
    # the colour bar gives the actual probabilities
    overlay = ax.imshow(up, cmap='jet', alpha=alpha)
    fig.colorbar(overlay, ax=ax, fraction=0.046, pad=0.04,
                 label='attention (head mean)')
    ax.set_title(heading, fontsize=9)
    ax.axis('off')
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    import mmcv

    from mmseg_davpt.apis import config_dataset_meta, init_davpt_model, \
        read_image
    from mmseg_davpt.visualization import (prepare_image,
                                           prompt_attention_maps,
                                           token_labels)
    from mmseg_davpt.visualization.prompt_attention import check_layers
    from mmseg_davpt.utils.output_guard import (OutputPathError,
                                                check_output_file)
    if osp.exists(args.out_dir) and not osp.isdir(args.out_dir):
        raise OutputPathError(f'--out-dir {args.out_dir!r} is a file')
    img = read_image(args.image)  # clear error before building the model
    model = init_davpt_model(args.config, args.checkpoint, args.device,
                             args.cfg_options)
    if args.layers is not None:
        check_layers(model, args.layers)
    classes = (model.dataset_meta or config_dataset_meta(model.cfg)
               or {}).get('classes')
    inputs = prepare_image(model, img).to(args.device)
    maps = prompt_attention_maps(model, inputs, args.layers)
    size = tuple(inputs.shape[-2:])
    rgb = mmcv.bgr2rgb(mmcv.imresize(img, (size[1], size[0])))
    inputs = [args.image, args.checkpoint, args.config]
    for layer, layer_maps in maps.items():  # every file before the first
        for label in token_labels(model, layer, layer_maps.shape[0],
                                  classes):
            check_output_file(osp.join(args.out_dir, file_name(layer, label)),
                              inputs, args.force, '--out-dir: file')
    os.makedirs(args.out_dir, exist_ok=True)
    for layer, layer_maps in maps.items():
        labels = token_labels(model, layer, layer_maps.shape[0], classes)
        for attention, label in zip(layer_maps, labels):
            path = osp.join(args.out_dir, file_name(layer, label))
            draw(rgb, attention, title(layer, label), path, args.alpha)
            print(f'{path}: {title(layer, label)}'.replace('\n', ' '))
    print(f'wrote {sum(len(m) for m in maps.values())} maps to '
          f'{args.out_dir}')


if __name__ == '__main__':
    main()
