"""A pretrained ImageNet CNN (`mixma.ImageEncoder`) as MA-LMM's vision model.

MA-LMM's Q-Former attends to a frame's visual tokens: EVA ViT-g's 257 in the paper. With an
`ImageEncoder` the tokens are its last feature map, `h x w` positions (7 x 7 at 224 px; larger
inputs give more), with the pooled embedding first in the place of a CLS token: 50 tokens of 1280
channels for EfficientNet-Lite0 at 224 px. As with the ViT, a layer norm (LAVIS's `ln_vision`)
follows and trains while the encoder stays frozen.

`backbone` is everything before that norm: with the encoder frozen and the frames fixed its
output is the same every epoch, so it can be computed once and cached (`vision_features`).
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.modeling_outputs import BaseModelOutputWithPooling

from mixma.models.vision.tower import build_tower


class ImageEncoderVision(nn.Module):
    """`ImageEncoder` tokens (pooled first), then `post_layernorm`.

    Args:
        tower: the encoder's `tower_config` dict (`MALMMConfig.vision_encoder`).
        eps: the layer norm's epsilon.
    """

    def __init__(self, tower: dict, eps: float):
        super().__init__()
        self.encoder = build_tower(tower)
        self.post_layernorm = nn.LayerNorm(self.encoder.output_dim, eps=eps)

    @property
    def dtype(self) -> torch.dtype:
        return self.post_layernorm.weight.dtype

    def backbone(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`[N, 3, H, W]` normalised frames → `[N, 1 + h*w, C]` tokens, before the layer norm."""
        return self.encoder(pixel_values).with_pooled_token()

    def forward(self, pixel_values: torch.Tensor, return_dict: bool = True, **kwargs) -> BaseModelOutputWithPooling:
        tokens = self.post_layernorm(self.backbone(pixel_values))  # [N, P, C]
        return BaseModelOutputWithPooling(last_hidden_state=tokens, pooler_output=tokens[:, 0])
