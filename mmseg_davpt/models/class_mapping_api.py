"""The model's entry points for ``ClassPromptMappingHook``: the hook decides
when; these act on the model's own metric guidance."""
from typing import Dict, List, Optional, Sequence

import torch


class ClassMappingMixin:
    """Fronts ``metric_guidance.mapping`` for the hook and the tools.

    Expects ``self.backbone`` and ``self.metric_guidance``.
    """

    def _guidance(self):
        if self.metric_guidance is None:
            raise RuntimeError('this model has no metric guidance (VPT '
                               'baseline): there is no class -> prompt '
                               'mapping')
        return self.metric_guidance

    @torch.no_grad()
    def refresh_class_mapping(self) -> Dict[str, int]:
        """Re-cluster classes onto prompts (``refresh_mapping`` of the
        guidance with the mapping layer's current ``W_q``); identical on
        every rank. Returns the refresh statistics."""
        guidance = self._guidance()
        return guidance.refresh_mapping(
            self.backbone.query_weight(guidance.mapping_layer))

    def reset_class_statistics(self) -> None:
        """Drop the class statistics accumulated so far (on this rank)."""
        self._guidance().mapping.reset_statistics()

    def save_class_statistics(self, path: str,
                              classes: Optional[Sequence[str]]) -> None:
        """Save the statistics of all ranks to ``path`` (every rank calls)."""
        self._guidance().mapping.save_statistics(path, classes)

    def load_class_statistics(self, path: str,
                              classes: Optional[Sequence[str]]) -> None:
        """Load statistics saved by ``save_class_statistics``; checked
        against ``classes`` and the feature width."""
        self._guidance().mapping.load_statistics(path, classes)

    def prompt_class_groups(self, class_names: Optional[Sequence[str]] = None
                            ) -> List[List[str]]:
        """Class names of each guided prompt under the current mapping."""
        return self._guidance().mapping.prompt_groups(class_names)

    @property
    def class_mapping_initialized(self) -> bool:
        return self.metric_guidance is not None and \
            self.metric_guidance.mapping.initialized

    @property
    def class_mapping_refreshes(self) -> int:
        """Refreshes (the initial one included) the mapping has had."""
        return int(self._guidance().mapping.num_refreshes)
