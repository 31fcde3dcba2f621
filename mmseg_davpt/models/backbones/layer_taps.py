"""What a guided layer of the prompted ViT hands to the metric loss.

The backbone fills one ``LayerTaps`` per requested layer in
``PromptedVisionTransformer.forward_with_taps``; the metric guidance reads
only these (never the backbone), so data flows one way:
backbone -> taps -> guidance -> loss.
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import torch


@dataclass
class LayerTaps:
    """Tensors of one transformer layer. Token order along ``T`` is
    ``[cls?, registers?, prompts, patches]``.

    Attributes:
        context: ``(B, T, D)`` attention output before the output projection
            (the concatenated heads): the paper's visual-token features.
        block_input: ``(B, T, D)`` the layer's input tokens (before its first
            norm), prompts of this layer already inserted.
        prompts: ``(N, D)`` the learnable prompts inserted before this layer
            (the proxies of a guided layer); ``(0, D)`` when it has none.
        query_weight: ``(D, D)`` this layer's query weight ``W_q`` (the
            paper's ``W_q p``, ``W_q x`` use it without the bias).
        num_prefix: leading non-prompt tokens: [CLS] (1, or 0 without) plus
            any register tokens (DINOv2); [CLS] is always index 0.
        num_prompt_tokens: prompt tokens after the prefix.
        grid: patch grid ``(h, w)`` of the input (after padding to a multiple
            of the patch size).
        patch_size: the patch embedding's stride, in pixels.
        query: ``(B, T, D)`` the query the attention computed,
            ``W_q LN(x) + b_q`` (the released code's [CLS] feature); ``None``
            when a caller builds taps without it.
        weights: ``(B, H, T, T)`` attention probabilities (rows: queries);
            only for layers asked for explicitly (unfused path).
    """
    context: torch.Tensor
    block_input: torch.Tensor
    prompts: torch.Tensor
    query_weight: torch.Tensor
    num_prefix: int
    num_prompt_tokens: int
    grid: Tuple[int, int]
    patch_size: int
    query: Optional[torch.Tensor] = None
    weights: Optional[torch.Tensor] = None

    @property
    def first_patch(self) -> int:
        """Index of the first patch token along ``T``."""
        return self.num_prefix + self.num_prompt_tokens

    def cls_token(self, tokens: Optional[torch.Tensor] = None
                  ) -> Optional[torch.Tensor]:
        """[CLS] of ``tokens`` (default ``context``) ``(B, D)``, or ``None``
        without a [CLS] token."""
        tokens = self.context if tokens is None else tokens
        return tokens[:, 0] if self.num_prefix else None

    def patch_tokens(self, tokens: Optional[torch.Tensor] = None
                     ) -> torch.Tensor:
        """Patch tokens of ``tokens`` (default ``context``) ``(B, h*w, D)``."""
        tokens = self.context if tokens is None else tokens
        return tokens[:, self.first_patch:]
