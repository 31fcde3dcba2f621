"""normalise_layer_indices: ints, sequences, negatives, bad input."""
import numpy as np
import pytest

from mmseg_davpt.models.backbones.layer_indices import normalise_layer_indices


@pytest.mark.parametrize('indices, expected', [
    (-1, (3, )), (2, (2, )), ((0, -1), (0, 3)), ([3, -4], (3, 0)),
    ((), ()), (None, ()), (np.int64(1), (1, )), (range(2), (0, 1)),
])
def test_normalised(indices, expected):
    assert normalise_layer_indices(indices, 4, 'out_indices') == expected


def test_out_of_range_and_wrong_type():
    with pytest.raises(ValueError, match=r'guided_layers contains -5, outside '
                       r'the 4 layers .*0\.\.3 or -4\.\.-1'):
        normalise_layer_indices(-5, 4, 'guided_layers')
    with pytest.raises(TypeError, match='out_indices must be an int or a '
                       'sequence of ints'):
        normalise_layer_indices(('a', ), 4, 'out_indices')
