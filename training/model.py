"""InspectionNet: EfficientNet-Lite with one head per taxonomy head, an embedding, class
activation maps and patch features, in the output order the ONNX contract names.

    image N x 3 x S x S
      -> stem, blocks 0..6 (strides 2..32), 1x1 head conv -> features N x 1280 x S/32 x S/32
      -> single head:  Linear on the pooled features                     `<head>_logits`
      -> multi head:   the Linear as a 1x1 conv at every location        `<head>_cam`
                       logits = mean of the cam over locations + bias    `<head>_logits`
      -> Linear -> L2 norm                                               `embedding`
      -> blocks at strides 8 and 16 -> training.anomaly.features         `patch_features`

The forward pass has no data-dependent Python control flow, so it traces to ONNX as is.
Freezing is by `requires_grad=False` on a prefix of stages: autograd then records nothing for
them (no activations kept, no backward through them), which is what makes partial fine-tuning
cheap on a CPU; their BatchNorm layers stay in eval mode so running statistics do not drift.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from timm.models.efficientnet import EfficientNet
from torch import nn

from inspection.errors import InputError
from inspection.taxonomy import Taxonomy
from training.anomaly.features import patch_features
from training.backbone import block_feature_maps, create_imagenet_model

EMBEDDING_DIM = 128
COSINE_SCALE = 16.0  # logits of the cosine classifier range over [-16, 16]: enough to train on


class CosineClassifier(nn.Module):
    """Category logits = scale * cos(embedding, class weight): trains the L2-normalised
    embedding so photos of one category cluster, which item-mismatch detection relies on."""

    def __init__(self, dim: int, classes: int, scale: float = COSINE_SCALE) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(classes, dim) * 0.01)
        self.scale = scale

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.scale * embedding @ F.normalize(self.weight, dim=1).t()


class InspectionNet(nn.Module):
    def __init__(self, taxonomy: Taxonomy, backbone: str = "efficientnet_lite0",
                 pretrained: bool = True, embedding_dim: int = EMBEDDING_DIM,
                 categories: list[str] | None = None, dropout: float = 0.2) -> None:
        super().__init__()
        self.taxonomy = taxonomy
        self.backbone_name = backbone
        self.categories = list(taxonomy.categories if categories is None else categories)
        body = create_imagenet_model(backbone, pretrained=pretrained)
        body.reset_classifier(0)
        self.body: EfficientNet = body
        width = body.num_features
        self.dropout = nn.Dropout(dropout)
        self.single_heads = nn.ModuleDict({
            h.name: nn.Linear(width, len(h.labels)) for h in taxonomy.heads if h.type == "single"})
        self.cam_heads = nn.ModuleDict({
            h.name: nn.Conv2d(width, len(h.labels), 1, bias=False)
            for h in taxonomy.heads if h.type == "multi"})
        self.cam_biases = nn.ParameterDict({
            h.name: nn.Parameter(torch.zeros(len(h.labels)))
            for h in taxonomy.heads if h.type == "multi"})
        self.embedding = nn.Linear(width, embedding_dim)
        self.category_classifier = (CosineClassifier(embedding_dim, len(self.categories))
                                    if len(self.categories) >= 2 else None)
        self.first_trainable = 0  # index into stages(); everything before it is frozen
        self.frozen_bn = False  # True: every BatchNorm keeps its running statistics in training
        self.output_names = [f"{h.name}_logits" for h in taxonomy.heads] + ["embedding"]
        self.output_names += [f"{h.name}_cam" for h in taxonomy.heads if h.type == "multi"]
        self.output_names += ["patch_features"]

    def stages(self) -> list[nn.Module]:
        """The backbone in order: stem, the 7 timm blocks, the 1x1 head conv."""
        body = self.body
        return [nn.ModuleList([body.conv_stem, body.bn1]), *body.blocks,
                nn.ModuleList([body.conv_head, body.bn2])]

    def feature_maps(self, image: torch.Tensor) -> dict[int, torch.Tensor]:
        """Outputs of the last block at strides 4, 8, 16, 32 and the head conv (key 0)."""
        maps = block_feature_maps(self.body, image)
        maps[0] = self.body.bn2(self.body.conv_head(maps[32]))  # the last block is stride 32
        return maps

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        maps = self.feature_maps(image)
        outputs = self.head_outputs(maps[0])
        outputs["patch_features"] = patch_features(maps)
        return outputs

    def head_outputs(self, features: torch.Tensor) -> dict[str, torch.Tensor]:
        """Every head's outputs from the head conv's N x 1280 x h x w features. A 1 x 1 map of
        pooled features gives the same logits and embedding (the heads are linear before the
        pooling), which is how `training.probe` fits the heads on cached features."""
        features = self.dropout(features)
        pooled = features.mean(dim=(2, 3))
        logits: dict[str, torch.Tensor] = {}
        cams: dict[str, torch.Tensor] = {}
        for head in self.taxonomy.heads:
            if head.type == "single":
                logits[head.name] = self.single_heads[head.name](pooled)
            else:
                cam = self.cam_heads[head.name](features)
                cams[head.name] = cam
                logits[head.name] = cam.mean(dim=(2, 3)) + self.cam_biases[head.name]
        outputs = {f"{name}_logits": value for name, value in logits.items()}
        outputs["embedding"] = F.normalize(self.embedding(pooled), dim=1)
        outputs.update({f"{name}_cam": value for name, value in cams.items()})
        return outputs

    def category_logits(self, embedding: torch.Tensor) -> torch.Tensor:
        if self.category_classifier is None:
            msg = "the model has fewer than 2 categories; no category classifier"
            raise ValueError(msg)
        return self.category_classifier(embedding)

    def freeze_backbone(self, trainable_blocks: int | str) -> None:
        """Train only the last `trainable_blocks` timm blocks plus the head conv (0: heads
        only, 'all': everything including the stem)."""
        count = len(self.stages())  # 9: stem, 7 blocks, head conv
        if trainable_blocks == "all":
            self.first_trainable = 0
        elif isinstance(trainable_blocks, int) and 0 <= trainable_blocks <= count - 2:
            self.first_trainable = count if trainable_blocks == 0 else count - 1 - trainable_blocks
        else:
            msg = f"trainable_blocks must be 0..{count - 2} or 'all', got {trainable_blocks!r}"
            raise ValueError(msg)
        for index, stage in enumerate(self.stages()):
            stage.requires_grad_(index >= self.first_trainable)
        self.train(self.training)

    def train(self, mode: bool = True) -> InspectionNet:
        super().train(mode)
        for stage in self.stages()[: self.first_trainable]:
            stage.eval()  # frozen BatchNorm keeps its ImageNet running statistics
        if self.frozen_bn:  # the trainable blocks' BatchNorm too: their scale and shift still train
            for module in self.body.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.eval()
        return self

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.body.parameters())

    def head_parameters(self) -> list[nn.Parameter]:
        body = {id(p) for p in self.body.parameters()}
        return [p for p in self.parameters() if id(p) not in body]


def build_model(taxonomy: Taxonomy, backbone: str = "efficientnet_lite0", pretrained: bool = True,
                embedding_dim: int = EMBEDDING_DIM,
                categories: list[str] | None = None, dropout: float = 0.2) -> InspectionNet:
    return InspectionNet(taxonomy, backbone=backbone, pretrained=pretrained,
                         embedding_dim=embedding_dim, categories=categories, dropout=dropout)


def load_checkpoint(path: str | Path) -> tuple[InspectionNet, dict[str, Any]]:
    """Rebuild the model a checkpoint was trained as (no ImageNet weights needed) and load it."""
    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint not found", path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - a damaged or foreign file fails in many ways
        raise InputError(f"not a training checkpoint ({exc})", path) from None
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise InputError("not a training checkpoint (no `model` key)", path)
    taxonomy = Taxonomy.from_dict(checkpoint["taxonomy"], where=f"{path} taxonomy")
    model = build_model(taxonomy, backbone=checkpoint["backbone"], pretrained=False,
                        embedding_dim=int(checkpoint["embedding_dim"]),
                        categories=checkpoint.get("categories"))
    model.load_state_dict(checkpoint["model"])
    return model.eval(), checkpoint
