"""InspectionNet honours the ONNX contract: output names and order, shapes, L2-normalised
embedding, CAMs whose spatial mean plus bias is the logits, and freezing that leaves autograd
nothing to record for frozen blocks."""

from __future__ import annotations

import pytest
import torch

from inspection.taxonomy import Taxonomy, load_taxonomy
from training.model import InspectionNet, build_model

SIZE = 96  # strides 8 and 32 give 12 x 12 patch features and 3 x 3 CAMs


@pytest.fixture(scope="module")
def model() -> InspectionNet:
    torch.manual_seed(0)
    return build_model(load_taxonomy(), pretrained=False).eval()


@pytest.fixture(scope="module")
def outputs(model: InspectionNet) -> dict[str, torch.Tensor]:
    with torch.no_grad():
        return model(torch.randn(2, 3, SIZE, SIZE))


def test_output_names_follow_the_contract(model: InspectionNet,
                                          outputs: dict[str, torch.Tensor]) -> None:
    assert model.output_names == [
        "condition_logits", "damage_logits", "accessories_logits", "embedding",
        "damage_cam", "accessories_cam", "patch_features"]
    assert list(outputs) == model.output_names


def test_shapes(outputs: dict[str, torch.Tensor]) -> None:
    assert outputs["condition_logits"].shape == (2, 4)
    assert outputs["damage_logits"].shape == (2, 6)
    assert outputs["accessories_logits"].shape == (2, 8)
    assert outputs["embedding"].shape == (2, 128)
    assert outputs["damage_cam"].shape == (2, 6, SIZE // 32, SIZE // 32)
    assert outputs["patch_features"].shape == (2, 40 + 112, SIZE // 8, SIZE // 8)


def test_embedding_is_unit_length(outputs: dict[str, torch.Tensor]) -> None:
    torch.testing.assert_close(outputs["embedding"].norm(dim=1), torch.ones(2))


def test_cam_mean_plus_bias_is_the_logits(model: InspectionNet,
                                          outputs: dict[str, torch.Tensor]) -> None:
    for head in ("damage", "accessories"):
        pooled = outputs[f"{head}_cam"].mean(dim=(2, 3)) + model.cam_biases[head]
        torch.testing.assert_close(pooled, outputs[f"{head}_logits"])


def test_any_taxonomy_head_gets_an_output() -> None:
    taxonomy = Taxonomy.from_dict({"heads": {"defect": {"type": "single",
                                                        "labels": ["good", "broken"]}}})
    model = build_model(taxonomy, pretrained=False).eval()
    with torch.no_grad():
        outputs = model(torch.zeros(1, 3, 64, 64))
    assert list(outputs) == ["defect_logits", "embedding", "patch_features"]
    assert model.category_classifier is None


def test_frozen_blocks_record_no_graph_and_keep_bn_statistics(model: InspectionNet) -> None:
    model.freeze_backbone(2)
    model.train()
    try:
        maps = model.feature_maps(torch.randn(2, 3, 64, 64))
        assert not maps[16].requires_grad  # block 4: frozen, nothing kept for backward
        assert maps[32].requires_grad  # block 6: trains
        assert not model.body.blocks[4][0].bn1.training
        assert model.body.blocks[6][0].bn1.training
        model.freeze_backbone(0)
        assert not any(p.requires_grad for p in model.body.parameters())
        assert all(p.requires_grad for p in model.head_parameters())
    finally:
        model.freeze_backbone("all")
        model.eval()


def test_category_logits_use_the_embedding(model: InspectionNet,
                                           outputs: dict[str, torch.Tensor]) -> None:
    logits = model.category_logits(outputs["embedding"])
    assert logits.shape == (2, 4) and logits.abs().max() <= 16.0 + 1e-4


def test_frozen_bn_keeps_every_running_statistic_while_blocks_train() -> None:
    torch.manual_seed(0)
    model = build_model(load_taxonomy(), pretrained=False)
    model.frozen_bn = True
    model.freeze_backbone("all")
    model.train()
    before = {k: v.clone() for k, v in model.body.state_dict().items() if "running" in k}
    model(torch.randn(4, 3, 64, 64)).get("condition_logits").sum().backward()
    after = model.body.state_dict()
    for key, value in before.items():
        torch.testing.assert_close(after[key], value)
    assert model.body.conv_stem.weight.grad is not None  # the weights still train
