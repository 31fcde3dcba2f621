"""Visual prompts of a ViT: VPT-Deep / VPT-Shallow (paper Sec. 3.1,
``docs/method.md`` section 1).

The backbone's ``prompts`` attribute is a ``VisualPrompts``; it holds every
learnable prompt, initialises them, applies prompt dropout (and the optional
L2 normalisation), inserts them into the token sequence and builds the
optional prompt-query attention mask. It is an ``nn.ParameterDict`` keyed
by the layer index (``'23'``), so checkpoints say which layer a prompt
belongs to (``backbone.prompts.23``) and layers without prompts hold no
entry.
"""
import math
from typing import List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

PROMPT_INITS = ('vpt', 'xavier', 'xavier_div8')
PROMPT_NORMS = (None, 'l2')


class VisualPrompts(nn.ParameterDict):
    """Learnable prompt tokens for each layer of a ViT: ``prompts['3']`` is
    layer 3's ``(N_3, D)`` parameter.

    A layer's sequence is ``[prefix, P_l, patches]`` (``prefix``: [CLS] when
    the ViT has one); ``P_l`` ``(N_l, D)`` replaces the previous layer's
    prompt outputs (VPT-Deep). VPT-Shallow inserts prompts before layer 0
    only; later layers carry the prompt outputs along.

    Args:
        num_layers: layers of the ViT.
        embed_dims: token width ``D``.
        num_prompts: prompts in each ordinary layer (0: none).
        depth: ``'deep'`` or ``'shallow'``.
        guided_layers: normalised indices of the metric-guided layers.
        num_guided_prompts: prompts in guided layers (``None``:
            ``num_prompts``).
        dropout: dropout on the prompt tokens (each image its own mask).
        init: ``'vpt'`` (default, VPT paper): uniform in ``[-v, v]``,
            ``v = sqrt(6 / (3 p^2 + D))`` (xavier over the patch-embedding
            fan-in ``3 p^2`` and ``D``). ``'xavier'`` (released code):
            xavier-uniform over a ``(L_g, N, D)`` tensor per group (guided
            layers, other layers; ``L_g`` layers with prompts in the group),
            i.e. ``v = sqrt(6 / (D (N + L_g)))``. ``'xavier_div8'`` (released
            code with ``init_divide_by8``): that divided by 8.
        norm: ``None`` (paper) or ``'l2'`` (released code's ``vpt_norm``):
            every forward uses ``P / max(||P||, 1e-6)`` per prompt, in the
            sequence and for the metric loss; the stored parameter is not
            changed.
        query_mask: released code's ``mask``: prompt queries attend to patch
            tokens only (not to the prefix nor to prompts). The paper has no
            mask (default ``False``).
        patch_size: patch size ``p`` (for the ``'vpt'`` init).
    """

    def __init__(self,
                 num_layers: int,
                 embed_dims: int,
                 num_prompts: int = 0,
                 depth: str = 'deep',
                 guided_layers: Sequence[int] = (),
                 num_guided_prompts: Optional[int] = None,
                 dropout: float = 0.,
                 init: str = 'vpt',
                 norm: Optional[str] = None,
                 query_mask: bool = False,
                 patch_size: int = 16):
        super().__init__()
        if num_guided_prompts is None:
            num_guided_prompts = num_prompts
        if num_prompts < 0 or num_guided_prompts < 0:
            raise ValueError(f'num_prompts must be >= 0, got {num_prompts} '
                             f'(num_guided_prompts {num_guided_prompts})')
        if depth not in ('deep', 'shallow'):
            raise ValueError(f"prompt_depth must be 'deep' or 'shallow', got "
                             f'{depth!r}')
        guided_layers = tuple(guided_layers)
        if guided_layers and num_guided_prompts <= 0:
            raise ValueError(
                f'guided_layers={guided_layers} need at least one guided '
                f'prompt, got num_guided_prompts={num_guided_prompts}')
        if depth == 'shallow' and guided_layers not in ((), (0, )):
            raise ValueError('VPT-Shallow has prompts in layer 0 only, so '
                             'guided_layers can only be (0,), got '
                             f'{guided_layers}')
        if init not in PROMPT_INITS:
            raise ValueError(f'prompt_init must be one of {PROMPT_INITS}, '
                             f'got {init!r}')
        if norm not in PROMPT_NORMS:
            raise ValueError(f'prompt_norm must be one of {PROMPT_NORMS}, '
                             f'got {norm!r}')
        self.num_layers = num_layers
        self.embed_dims = embed_dims
        self.num_prompts = num_prompts
        self.num_guided_prompts = num_guided_prompts
        self.depth = depth
        self.guided_layers = guided_layers
        self.init = init
        self.norm = norm
        self.query_mask = query_mask
        self.patch_size = patch_size
        self.counts: Tuple[int, ...] = tuple(
            0 if depth == 'shallow' and i > 0 else
            num_guided_prompts if i in guided_layers else num_prompts
            for i in range(num_layers))
        for i, n in enumerate(self.counts):
            if n > 0:
                self[str(i)] = nn.Parameter(torch.zeros(n, embed_dims))
        self.dropout = nn.Dropout(dropout)
        # (0, D), follows the module's device and dtype; not saved
        self.register_buffer('_none', torch.zeros(0, embed_dims),
                             persistent=False)
        self.reset_parameters()

    def layers_with_prompts(self) -> List[int]:
        """Indices of the layers that hold prompts."""
        return [i for i, n in enumerate(self.counts) if n > 0]

    # -------------------------------------------------------------- init
    def reset_parameters(self) -> None:
        """Draw every prompt from the ``init`` distribution (class doc)."""
        if self.init == 'vpt':
            val = math.sqrt(6. / float(3 * self.patch_size**2 +
                                       self.embed_dims))
            for prompt in self.values():
                nn.init.uniform_(prompt, -val, val)
            return
        divide = 8. if self.init == 'xavier_div8' else 1.
        guided = [i for i in self.layers_with_prompts()
                  if i in self.guided_layers]
        other = [i for i in self.layers_with_prompts() if i not in guided]
        for group in (guided, other):
            if not group:
                continue
            # one (L_g, N, D) tensor per group, as the released code draws
            # it: fan_in = N * D, fan_out = L_g * D
            drawn = nn.init.xavier_uniform_(
                torch.empty(len(group), self.counts[group[0]],
                            self.embed_dims)) / divide
            with torch.no_grad():
                for layer, value in zip(group, drawn):
                    self[str(layer)].copy_(value)

    # ----------------------------------------------------------- forward
    def layer_prompts(self, layer: int) -> torch.Tensor:
        """The prompts ``layer`` uses ``(N_l, D)`` (L2-normalised with
        ``norm='l2'``); ``(0, D)`` for a layer without prompts."""
        if str(layer) not in self:
            return self._none
        prompts = self[str(layer)]
        if self.norm == 'l2':
            prompts = F.normalize(prompts, p=2, dim=-1, eps=1e-6)
        return prompts

    def insert(self, x: torch.Tensor, layer: int, num_prefix: int,
               num_prompt_tokens: int) -> Tuple[torch.Tensor, int]:
        """Put ``layer``'s prompts into ``x`` ``(B, T, D)`` in place of the
        ``num_prompt_tokens`` prompt outputs after the ``num_prefix`` prefix
        tokens. Returns ``(x, prompt tokens now in x)``; ``x`` unchanged for
        a layer without prompts."""
        if self.counts[layer] == 0:
            return x, num_prompt_tokens
        prompts = self.layer_prompts(layer).expand(x.shape[0], -1, -1)
        # One concatenation swaps the previous layer's prompt outputs for
        # this layer's prompts (VPT-Deep).
        x = torch.cat((x[:, :num_prefix], self.dropout(prompts),
                       x[:, num_prefix + num_prompt_tokens:]), dim=1)
        return x, self.counts[layer]

    def attention_mask(self, num_prefix: int, num_prompt_tokens: int,
                       num_tokens: int,
                       device: torch.device) -> Optional[torch.Tensor]:
        """``(T, T)`` bool mask (True: may attend) keeping prompt queries off
        the prefix and prompt keys, or ``None`` (no mask needed: option off
        or no prompt tokens), so those layers keep the fused kernel."""
        if not self.query_mask or num_prompt_tokens == 0:
            return None
        end = num_prefix + num_prompt_tokens
        mask = torch.ones(num_tokens, num_tokens, dtype=torch.bool,
                          device=device)
        mask[num_prefix:end, :end] = False
        return mask
