"""The backbone's ``pretrained=`` / ``init_cfg`` arguments, checked."""
import warnings
from typing import Optional

PRETRAINED_KEYS = ('type', 'checkpoint', 'prefix', 'map_location')


def pretrained_init_cfg(pretrained: Optional[str],
                        init_cfg: Optional[dict]) -> Optional[dict]:
    """MMSegmentation's ``pretrained=`` semantics, then ``init_cfg`` checks.

    A str ``pretrained`` becomes ``dict(type='Pretrained', checkpoint=...)``
    with MMSegmentation's deprecation warning (this is how
    ``EncoderDecoder(pretrained=...)`` reaches the backbone).

    Raises:
        ValueError: both ``pretrained`` and ``init_cfg`` given; a
            ``'Pretrained'`` ``init_cfg`` with an unknown key (named, with
            the expected ones) or without ``checkpoint``.
        TypeError: ``pretrained`` neither a str nor ``None``.
    """
    if pretrained is not None:
        if init_cfg:
            raise ValueError('init_cfg and pretrained cannot be set at the '
                             f'same time (pretrained={pretrained!r}, '
                             f'init_cfg={init_cfg!r})')
        if not isinstance(pretrained, str):
            raise TypeError('pretrained must be a str or None, got '
                            f'{type(pretrained).__name__}')
        warnings.warn('DeprecationWarning: pretrained is deprecated, '
                      'please use "init_cfg" instead')
        init_cfg = dict(type='Pretrained', checkpoint=pretrained)
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        unknown = sorted(set(init_cfg) - set(PRETRAINED_KEYS))
        if unknown or 'checkpoint' not in init_cfg:
            problem = f'unknown key(s) {unknown}' if unknown else \
                "no 'checkpoint'"
            raise ValueError(
                f"init_cfg of type 'Pretrained' has {problem}; expected "
                "keys: 'checkpoint' (required), 'prefix', 'map_location' "
                f'(got {sorted(init_cfg)})')
    return init_cfg
