from .finite_seg_data_preprocessor import (FiniteSegDataPreProcessor,
                                           check_finite_inputs)

__all__ = ['FiniteSegDataPreProcessor', 'check_finite_inputs']
