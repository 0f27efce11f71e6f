"""Which bundle the service runs: FP32 unless the CPU has 8-bit dot products, the card's INT8
accuracy check passes and INT8 is faster here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from inspection import precision
from inspection.card import read_card
from inspection.precision import choose_bundle, cpu_int8_features, int8_accuracy_ok, is_int8

VNNI = "flags : fpu sse2 avx2 avx512f avx512_vnni"
NO_VNNI = "flags : fpu sse2 avx2"


def int8_sibling(fp32: Path, accuracy_delta: dict[str, float]) -> Path:
    """An `-int8` bundle beside `fp32` (the same graph: only the card says INT8)."""
    sibling = fp32.with_name(f"{fp32.name}-int8")
    shutil.copytree(fp32, sibling)
    card_path = sibling / "model_card.json"
    card = json.loads(card_path.read_text())
    card["export"] = {**card.get("export", {}), "quantized_from": card["model_id"],
                      "int8": {"accuracy_delta": accuracy_delta}}
    card_path.write_text(json.dumps(card))
    return sibling


def test_cpu_flags_are_read_from_cpuinfo() -> None:
    assert cpu_int8_features(VNNI) == ["avx512_vnni"]
    assert cpu_int8_features(NO_VNNI) == []


def test_accuracy_check() -> None:
    assert int8_accuracy_ok({"accuracy_delta": {"condition": -0.004, "damage": None}})[0]
    ok, why = int8_accuracy_ok({"accuracy_delta": {"condition": -0.05}})
    assert not ok and "condition" in why
    assert not int8_accuracy_ok(None)[0]


def test_choice(tmp_path: Path, cracked_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fp32 = shutil.copytree(cracked_bundle, tmp_path / "model")
    assert choose_bundle(fp32, "auto", VNNI)[0] == fp32  # no sibling
    sibling = int8_sibling(fp32, {"condition": 0.0})
    assert is_int8(read_card(sibling)) and not is_int8(read_card(fp32))
    chosen, why = choose_bundle(fp32, "auto", NO_VNNI)
    assert chosen == fp32 and "VNNI" in why
    assert choose_bundle(fp32, "fp32", VNNI)[0] == fp32
    assert choose_bundle(fp32, "int8", NO_VNNI)[0] == sibling
    # the speed is measured on the host; set here, so the test says nothing about timings
    measure = precision.measured_speedup
    monkeypatch.setattr(precision, "measured_speedup", lambda *_: 0.95)
    chosen, why = choose_bundle(fp32, "auto", VNNI)
    assert chosen == fp32 and "0.95 x FP32" in why
    monkeypatch.setattr(precision, "measured_speedup", lambda *_: 1.6)
    assert choose_bundle(fp32, "auto", VNNI)[0] == sibling
    size = read_card(fp32).preprocessing.input_size
    assert measure(fp32 / "model.onnx", sibling / "model.onnx", size) > 0.0


def test_a_failed_accuracy_check_keeps_fp32(tmp_path: Path, cracked_bundle: Path) -> None:
    fp32 = shutil.copytree(cracked_bundle, tmp_path / "model")
    int8_sibling(fp32, {"condition": -0.2})
    chosen, why = choose_bundle(fp32, "auto", VNNI)
    assert chosen == fp32 and "accuracy" in why
