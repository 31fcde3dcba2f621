"""Checks that a usable OpenMMLab stack is importable, with an actionable message.

The project runs on either the OpenMMLab packages (mmsegmentation 1.2.x with a
compiled mmcv 2.1) or the OneDL continuation (onedl-mmsegmentation 1.4.x,
onedl-mmcv 2.3.x). Both install the same import names, so neither is listed in
``install_requires`` (that would break an environment holding the other); this
check runs at import time instead.
"""

INSTALL_HINT = ('Install the tested stack with '
                '`pip install -r requirements/mminstall.txt` '
                '(OneDL packages, no compiled ops needed), or see '
                '"Troubleshooting the install" in docs/reference.md.')


def check_openmmlab_stack() -> None:
    """Raise ``ImportError`` naming the missing or broken OpenMMLab package."""
    for name in ('mmengine', 'mmcv', 'mmseg'):
        try:
            __import__(name)
        except ImportError as err:  # pragma: no cover - exercised by users
            hint = ''
            if 'mmcv._ext' in str(err):
                hint = (' (this mmsegmentation imports compiled mmcv ops; '
                        'mmcv-lite is not enough)')
            raise ImportError(
                f'mmseg_davpt needs `{name}`, which failed to import: {err}'
                f'{hint}. {INSTALL_HINT}') from err
