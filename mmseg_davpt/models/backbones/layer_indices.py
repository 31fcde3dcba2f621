"""Layer-index arguments (``out_indices``, ``guided_layers``, taps) in one
place: an int or a sequence, 0-based, negative counted from the end."""
import operator
from typing import Sequence, Tuple, Union

LayerIndices = Union[int, Sequence[int], None]


def normalise_layer_indices(indices: LayerIndices, num_layers: int,
                            name: str, unique: bool = False
                            ) -> Tuple[int, ...]:
    """``-1`` / ``(0, -1)`` / ``None`` -> a tuple of indices in
    ``0..num_layers-1`` (order kept; ``None`` gives ``()``).

    Raises:
        ValueError: an index outside the ``num_layers`` layers, naming the
            argument ``name`` and the valid range.
        ValueError: with ``unique``, a layer given twice (``(23, -1)`` on
            24 layers), e.g. a guided layer that would be weighted twice.
        TypeError: something that is neither an int nor a sequence of ints.
    """
    if indices is None:
        return ()
    if not isinstance(indices, (list, tuple, range)):
        indices = (indices, )
    out = []
    for i in indices:
        try:
            i = operator.index(i)
        except TypeError:
            raise TypeError(f'{name} must be an int or a sequence of ints, '
                            f'got {indices!r}') from None
        j = i + num_layers if i < 0 else i
        if not 0 <= j < num_layers:
            raise ValueError(
                f'{name} contains {i}, outside the {num_layers} layers of '
                f'this ViT (valid: 0..{num_layers - 1} or '
                f'-{num_layers}..-1)')
        if unique and j in out:
            raise ValueError(
                f'{name} names layer {j} twice ({indices!r} on '
                f'{num_layers} layers); give each layer once')
        out.append(j)
    return tuple(out)
