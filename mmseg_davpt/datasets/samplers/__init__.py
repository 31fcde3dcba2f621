from .class_balanced_sampler import (ClassBalancedSampler,
                                     check_balanced_loader)

__all__ = ['ClassBalancedSampler', 'check_balanced_loader']
