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

    def assign_random_class_mapping(self, seed: int) -> Dict[str, int]:
        """Replace the mapping by a seeded random fixed class -> prompt
        assignment (``ClassPromptMapping.assign_random``)."""
        return self._guidance().mapping.assign_random(seed)

    def reset_class_statistics(self) -> None:
        """Drop the class statistics accumulated so far (on this rank)."""
        self._guidance().mapping.reset_statistics()

    def save_class_statistics(self, path: str,
                              classes: Optional[Sequence[str]],
                              settings: Optional[dict] = None) -> None:
        """Save the statistics of all ranks to ``path`` with ``settings``
        (every rank calls)."""
        self._guidance().mapping.save_statistics(path, classes, settings)

    def load_class_statistics(self, path: str,
                              classes: Optional[Sequence[str]],
                              settings: Optional[dict] = None) -> None:
        """Load statistics saved by ``save_class_statistics``; checked
        against ``classes``, the feature width and ``settings``."""
        self._guidance().mapping.load_statistics(path, classes, settings)

    def class_mapping_settings(self) -> Dict:
        """What the class -> prompt mapping means (plain values): the guided
        layers, the layer and the vectors it was clustered from, the
        classes and guided prompts it maps between."""
        guidance = self._guidance()
        return dict(guided_layers=list(guidance.guided_layers),
                    mapping_layer=guidance.mapping_layer,
                    feature=guidance.feature,
                    token_source=guidance.token_source,
                    cls_source=guidance.cls_source,
                    pooling=guidance.pooling,
                    num_classes=guidance.num_classes,
                    num_guided_prompts=guidance.mapping.num_prompts)

    def class_statistics_settings(self) -> Dict:
        """What the class statistics of the initial pass depend on, on the
        model side: the mapping layer and vectors compared, the prompt
        counts, and fingerprints of the frozen base weights and of the
        prompts as they are now (the pass runs the model as it is)."""
        from ..peft.fingerprint import base_fingerprint, tensors_fingerprint
        settings = self.class_mapping_settings()
        settings.pop('guided_layers')  # only the mapping layer is read
        prompts = getattr(self.backbone, 'prompts', None)
        settings.update(
            num_prompts=getattr(self.backbone, 'num_prompts', None),
            base_weights=base_fingerprint(self),
            prompts=tensors_fingerprint(sorted(
                prompts.named_parameters())) if prompts is not None else None)
        return settings

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
