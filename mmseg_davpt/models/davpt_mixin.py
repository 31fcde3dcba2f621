"""What the DA-VPT segmentor and classifier share: building the metric
guidance from the backbone, the non-finite-loss guard and the mapping entry
points used by ``ClassPromptMappingHook``."""
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.logging import MessageHub


class DAVPTMixin:
    """Mixed into an mmseg / mmpretrain model class (before it in the MRO).

    Expects ``self.backbone`` and sets ``self.metric_guidance`` (``None`` for
    plain VPT) and ``self.check_finite_loss``.
    """

    def _build_metric_guidance(self, registry, cfg: Optional[dict],
                               check_finite_loss: bool,
                               **default_args) -> None:
        """Build ``cfg`` from ``registry`` with the backbone's prompt layout
        and ``default_args`` (e.g. ``num_classes`` of the head)."""
        self.check_finite_loss = check_finite_loss
        self.metric_guidance = None
        if cfg is None:
            return
        if not hasattr(self.backbone, 'forward_with_taps'):
            raise TypeError('metric_guidance needs a prompted backbone such as '
                            'PromptedVisionTransformer, got '
                            f'{type(self.backbone).__name__}')
        self.metric_guidance = registry.build(
            cfg,
            default_args=dict(
                embed_dims=self.backbone.embed_dims,
                guided_layers=self.backbone.guided_layers,
                num_guided_prompts=self.backbone.num_guided_prompts,
                **default_args))

    def parse_losses(self, losses: Dict) -> Tuple[torch.Tensor, Dict]:
        """``BaseModel.parse_losses`` plus the non-finite-loss guard."""
        if self.check_finite_loss:
            for name, value in losses.items():
                if 'loss' not in name:
                    continue
                for v in (value if isinstance(value, list) else [value]):
                    if not torch.isfinite(v).all():
                        it = MessageHub.get_current_instance().get_info(
                            'iter')
                        raise FloatingPointError(
                            f'non-finite {name} ({v.detach().sum().item()}) '
                            f'at iteration {it} (0-based); training stopped '
                            'before the optimizer step. Set '
                            'model.check_finite_loss=False to leave it to '
                            'the optimizer wrapper.')
        return super().parse_losses(losses)

    # ------------------------------------------------------------ mapping
    # The hook decides when; these say what, on the model's own state.
    def _mapping(self):
        if self.metric_guidance is None:
            raise RuntimeError('this model has no metric guidance (VPT '
                               'baseline): there is no class -> prompt '
                               'mapping')
        return self.metric_guidance.mapping

    @torch.no_grad()
    def refresh_class_mapping(self) -> Dict[str, int]:
        """Re-cluster classes onto prompts from the statistics accumulated
        on all ranks, in the space the loss compares (class means through
        ``W_q`` of the deepest guided layer for ``feature='query'``);
        identical on every rank. Returns the refresh statistics."""
        guidance = self.metric_guidance
        seen, means = self._mapping().class_means()
        if guidance.maps_in_query_space and len(seen):
            means = self.backbone.project_query(guidance.mapping_layer,
                                                means.float())
        return guidance.mapping.assign(seen, means)

    def assign_random_class_mapping(self, seed: int) -> Dict[str, int]:
        """Replace the mapping by a seeded random fixed class -> prompt
        assignment (``ClassPromptMapping.assign_random``)."""
        return self._mapping().assign_random(seed)

    def reset_class_statistics(self) -> None:
        """Drop the class statistics accumulated so far (on this rank)."""
        self._mapping().reset_statistics()

    def save_class_statistics(self, path: str,
                              classes: Optional[Sequence[str]]) -> None:
        """Save the statistics of all ranks to ``path`` (every rank calls)."""
        self._mapping().save_statistics(path, classes)

    def load_class_statistics(self, path: str,
                              classes: Optional[Sequence[str]]) -> None:
        """Load statistics saved by ``save_class_statistics``; checked
        against ``classes`` and the feature width."""
        self._mapping().load_statistics(path, classes)

    def prompt_class_groups(self, class_names: Optional[Sequence[str]] = None
                            ) -> List[List[str]]:
        """Class names of each guided prompt under the current mapping."""
        return self._mapping().prompt_groups(class_names)

    @property
    def class_mapping_initialized(self) -> bool:
        return self.metric_guidance is not None and \
            self.metric_guidance.mapping.initialized

    @property
    def class_mapping_refreshes(self) -> int:
        """Refreshes (the initial one included) the mapping has had."""
        return int(self._mapping().num_refreshes)

    # ------------------------------------------------------------------
    # init_weights log: one summary line instead of mmengine's dump of
    # every parameter (added by the checkpoint/tools work, issue 11.6)
    # ------------------------------------------------------------------
    def _dump_init_info(self) -> None:
        """Log one line for ``init_weights`` instead of mmengine's entry per
        parameter (``BaseModule._dump_init_info``: ~500 KB for a ViT-L,
        written into the run's log file or onto the console)."""
        from mmengine.dist import is_main_process
        from mmengine.logging import print_log
        if not is_main_process():
            return
        info = getattr(self, '_params_init_info', {})
        params = list(self.parameters())
        unchanged = sum(
            1 for p in params
            if 'same before and after' in info.get(p, {}).get('init_info', ''))
        print_log(
            f'{type(self).__name__}.init_weights: {len(params) - unchanged} '
            f'of {len(params)} parameter tensors '
            f'({sum(p.numel() for p in params) / 1e6:.2f}M values) set, '
            f'{unchanged} kept their constructor values (per-parameter '
            'details not logged)', logger='current')
