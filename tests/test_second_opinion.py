"""The anomaly score as a second opinion on a head's `no_defect` label: the taxonomy names the
label, `anomaly fit` fits the opinion, the service and `evaluate` weigh it in (issue 10 item 3)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from bundle_factory import build_bundle
from PIL import Image

from inspection.cli import main as cli
from inspection.errors import BundleError, InputError
from inspection.manifest import Sample, write_manifest
from inspection.second_opinion import SecondOpinion, reweigh, reweigh_labels
from inspection.taxonomy import Taxonomy, shows_no_defect
from training.anomaly.threshold import fit_second_opinion

TILE = Taxonomy.from_dict({"name": "tile", "heads": {
    "defect": {"type": "single", "labels": ["MT_Free", "MT_Blob"], "no_defect": "MT_Free"}}})


def test_the_taxonomy_names_the_no_defect_label() -> None:
    assert TILE.head("defect").no_defect == "MT_Free"
    assert Taxonomy.from_dict(TILE.to_dict()).head("defect").no_defect == "MT_Free"  # kept in cards
    bottle = Taxonomy.from_dict({"heads": {"defect": {"type": "single", "labels": ["good", "broken"]}}})
    assert bottle.head("defect").no_defect == "good"  # undeclared: a label named good
    colour = Taxonomy.from_dict({"heads": {"colour": {"type": "single", "labels": ["red", "blue"]}}})
    assert colour.head("colour").no_defect is None


@pytest.mark.parametrize(("spec", "named"), [
    ({"type": "single", "labels": ["a", "b"], "no_defect": "c"}, "'c' is not one of its labels"),
    ({"type": "multi", "labels": ["a", "b"], "no_defect": "a"}, "single-label"),
])
def test_a_wrong_no_defect_label_is_refused(spec: dict, named: str) -> None:
    with pytest.raises(InputError, match=named):
        Taxonomy.from_dict({"heads": {"defect": spec}})


def test_one_rule_says_which_photos_show_no_defect() -> None:
    assert shows_no_defect({"defect": ("MT_Free",)}, TILE)
    assert not shows_no_defect({"defect": ("MT_Blob",)}, TILE)
    assert not shows_no_defect({"defect": ("MT_Free",)})  # without the taxonomy: only `good`
    assert shows_no_defect({"condition": ("B",), "damage": (), "accessories": ("charger",)})
    assert not shows_no_defect({"condition": ("C",)})
    assert not shows_no_defect({"condition": ("A",), "damage": ("scratch",)})


def test_reweigh_is_a_product_of_experts() -> None:
    head = np.array([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3]])
    assert np.allclose(reweigh(head, 0, np.array([0.5, 0.5])), head)  # no opinion: unchanged
    fused = reweigh(head, 0, np.array([0.9, 0.1]))
    assert np.allclose(fused.sum(axis=1), 1.0)
    assert fused[0, 0] < head[0, 0] and fused[1, 0] > head[1, 0]
    assert fused[0, 1] / fused[0, 2] == pytest.approx(3.0)  # which defect stays the head's call
    assert fused[0].argmax() == 1  # the head's doubtful "good" is overruled
    labels = reweigh_labels({"MT_Free": 0.6, "MT_Blob": 0.4}, "MT_Free", 0.9)
    assert labels["MT_Blob"] == pytest.approx(0.4 * 1.8 / (0.6 * 0.2 + 0.4 * 1.8))


def test_fit_reads_the_score_or_declines() -> None:
    rng = np.random.default_rng(0)
    goods, defects = rng.uniform(0.5, 1.0, 20), rng.uniform(1.5, 4.0, 8)
    opinion, why = fit_second_opinion(goods, defects, ("defect",))
    assert opinion is not None and why == "" and opinion.fitted_on["auroc"] == 1.0
    q = opinion.defect_probability(np.array([0.7, 3.0]))
    assert q[0] < 0.5 < q[1]
    assert fit_second_opinion(goods, defects[:1], ("defect",))[0] is None  # too few defects
    opinion, why = fit_second_opinion(defects, goods, ("defect",))
    assert opinion is None and "does not rise" in why


def test_a_card_opinion_on_a_head_without_no_defect_is_refused() -> None:
    entry = {"slope": 2.0, "intercept": -1.0, "heads": ["condition"], "fitted_on": {}}
    from inspection.taxonomy import load_taxonomy
    with pytest.raises(BundleError, match="no_defect"):
        SecondOpinion.from_entry(entry, load_taxonomy(), "card.anomaly['phone'].second_opinion")


def test_synthetic_damage_needs_to_know_the_good_photos(tmp_path: Path) -> None:
    from inspection.card import PreprocessSpec
    from inspection.manifest import read_manifest
    from training.data import InspectionDataset
    from training.synthetic_damage import SyntheticDamageDataset

    colours = Taxonomy.from_dict({"heads": {"look": {"type": "single", "labels": ["plain", "dented"]}}})
    Image.fromarray(np.full((40, 40, 3), 90, np.uint8)).save(tmp_path / "0.png")
    samples = [Sample(image="0.png", item_id="0", split="train", labels={"look": ("plain",)})]
    manifest = read_manifest(write_manifest(tmp_path / "m.csv", samples, ["look"]))
    base = InspectionDataset(manifest, manifest.samples, colours, [], PreprocessSpec(input_size=32))
    with pytest.raises(ValueError, match="no_defect"):
        SyntheticDamageDataset(base, "cutpaste=dented@1")


def _tile_photo(rng: np.random.Generator, blob: bool) -> np.ndarray:
    rgb = np.clip(rng.normal(90, 6, (64, 64, 3)), 0, 255).astype(np.uint8)
    if blob:
        rgb[16:44, 16:44] = 240  # a defect: a patch unlike any good photo's
    return rgb


@pytest.fixture(scope="module")
def tile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny bundle with magnetic tile's head (no_defect MT_Free) and its detector, fitted by
    `anomaly fit` on a manifest without categories: 10 good and 3 blob train photos, 4 + 3 val,
    4 + 4 test."""
    root = tmp_path_factory.mktemp("tile")
    # a head that leans to "no defect", as one trained on few defects does
    bundle = build_bundle(root / "bundle", taxonomy=TILE, size=32, biases={"defect": {"MT_Free": 1.0}})
    rng = np.random.default_rng(0)
    samples = []
    for split, goods, blobs in (("train", 10, 3), ("val", 4, 3), ("test", 4, 4)):
        for index in range(goods + blobs):
            blob = index >= goods
            name = f"{split}_{index}.png"
            Image.fromarray(_tile_photo(rng, blob)).save(root / name)
            samples.append(Sample(image=name, item_id=name, split=split,
                                  labels={"defect": ("MT_Blob" if blob else "MT_Free",)}))
    manifest = write_manifest(root / "manifest.csv", samples, ["defect"])
    assert cli(["anomaly", "fit", "--bundle", str(bundle), "--manifest", str(manifest),
                "--as-category", "tile", "--coreset-ratio", "0.5", "--no-references"]) == 0
    return bundle, manifest


def test_anomaly_fit_writes_the_opinion_into_the_card(tile: tuple[Path, Path]) -> None:
    from inspection.card import verify_bundle
    entry = verify_bundle(tile[0]).anomaly["tile"]
    opinion = entry["second_opinion"]
    assert opinion["heads"] == ["defect"] and opinion["slope"] > 0
    # the val goods (never in the bank) against the train and val blobs
    assert opinion["fitted_on"]["good"] == 4 and opinion["fitted_on"]["defect"] == 6


def _upload(rgb: np.ndarray) -> bytes:
    """A PNG big enough for the quality checks (160 px), the same to the model once squashed
    to its 32 px: each pixel three times over."""
    buffer = io.BytesIO()
    Image.fromarray(rgb).resize((192, 192), Image.Resampling.NEAREST).save(buffer, format="PNG")
    return buffer.getvalue()


def test_the_service_weighs_the_opinion_into_the_head(tile: tuple[Path, Path]) -> None:
    from inspection.decide import load_policy
    from inspection.images import decode_photo
    from inspection.loaded_model import LoadedModel
    from inspection.pipeline import Upload, inspect_item

    model = LoadedModel.load(tile[0])
    rng = np.random.default_rng(1)
    uploads = {blob: _upload(_tile_photo(rng, blob)) for blob in (False, True)}
    results = {blob: inspect_item(model, load_policy(), [Upload(data, "tile.png")], "tile").result
               for blob, data in uploads.items()}
    photos = {blob: result["photos"][0] for blob, result in results.items()}
    q = {blob: photo["anomaly_defect_probability"] for blob, photo in photos.items()}
    assert q[False] < 0.5 < q[True]
    assert model.engine.predict([_tile_photo(rng, True)])[0].top("defect")[0] == "MT_Free"
    assert results[True]["item"]["heads"]["defect"]["label"] == "MT_Blob"  # the head alone: MT_Free
    assert results[False]["item"]["heads"]["defect"]["label"] == "MT_Free"
    for blob, photo in photos.items():  # the served probabilities are the head's, weighed by q
        rgb = decode_photo(uploads[blob], min_side=32).rgb
        head = model.engine.predict([rgb])[0].probabilities["defect"]
        assert photo["probabilities"]["defect"] == pytest.approx(
            reweigh_labels(head, "MT_Free", q[blob]), abs=1e-6)
    uncategorised = inspect_item(model, load_policy(), [Upload(uploads[True], "tile.png")], None)
    assert uncategorised.result["photos"][0]["anomaly_defect_probability"] is None  # no detector


def test_evaluate_measures_what_the_service_serves(tile: tuple[Path, Path], tmp_path: Path) -> None:
    bundle, manifest = tile
    base = ["evaluate", "--bundle", str(bundle), "--manifest", str(manifest), "--split", "test",
            "--as-category", "tile"]
    assert cli([*base, "--out", str(tmp_path / "served")]) == 0
    assert cli([*base, "--head-only", "--out", str(tmp_path / "head")]) == 0
    served = json.loads((tmp_path / "served" / "metrics.json").read_text())
    head = json.loads((tmp_path / "head" / "metrics.json").read_text())
    assert served["second_opinion"] == {"tile": 8} and head["second_opinion"] == {}
    assert "second opinion" in (tmp_path / "served" / "report.html").read_text()
    assert "second opinion" not in (tmp_path / "head" / "report.html").read_text()
    assert cli([*base, "--head-only", "--update-card"]) == 2  # the card describes what is served
    # the head calls the blobs good; the detector does not, and the served figures say so
    assert head["heads"]["defect"]["macro_f1"] < 0.5
    assert served["heads"]["defect"]["macro_f1"] > head["heads"]["defect"]["macro_f1"]
    # what reaches the operators: the items the service flags `defect_found`
    items = served["items_metrics"]
    assert items["defect_found_items.defect"] == "4 with a defect, 4 without"
    assert items["defect_found_recall.defect"] > head["items_metrics"]["defect_found_recall.defect"]
    assert items["defect_found_recall.defect"] == 1.0 and items["defect_found_false_flag_rate.defect"] == 0.0
    assert "defect_found_recall.defect" in (tmp_path / "served" / "report.html").read_text()


def test_the_api_and_the_operator_page_carry_the_item_s_defect_call(
        tile: tuple[Path, Path], make_app: Any) -> None:
    """Through the service: the answer's item names the head's call (with the opinion weighed
    in) and the photo's q; the operator's page and the evidence packet show the call."""
    client = make_app(tile[0], api_keys="", dev_mode=True)
    blob = _upload(_tile_photo(np.random.default_rng(3), True))
    answer = client.post("/v1/inspections", files=[("photos", ("tile.png", blob, "image/png"))],
                         data={"return_id": "RMA-7", "category": "tile"})
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["item"]["heads"]["defect"]["label"] == "MT_Blob"
    assert body["photos"][0]["anomaly_defect_probability"] > 0.5
    page = client.get(f"/ui/items/{body['id']}")
    assert page.status_code == 200 and "<strong>MT Blob</strong>" in page.text
    evidence = client.get(f"/v1/inspections/{body['id']}/evidence")
    assert evidence.status_code == 200 and "<dt>defect</dt><dd>MT_Blob (" in evidence.text


def test_a_called_defect_raises_defect_found_on_its_own_photo_and_reaches_the_queue(
        tile: tuple[Path, Path], make_app: Any) -> None:
    """A dark photo (refused for quality), a good one, then the blob: the flag points at the
    blob's own index (2), not its place among the usable photos (1), holds the refund, and the
    operator's queue filters on it."""
    client = make_app(tile[0], api_keys="", dev_mode=True)
    rng = np.random.default_rng(4)
    dark = _upload(np.zeros((64, 64, 3), np.uint8))
    good, blob = _upload(_tile_photo(rng, False)), _upload(_tile_photo(rng, True))
    answer = client.post("/v1/inspections", data={"return_id": "RMA-8", "category": "tile"},
                         files=[("photos", (f"{i}.png", data, "image/png"))
                                for i, data in enumerate((dark, good, blob))])
    assert answer.status_code == 201, answer.text
    body = answer.json()
    defects = [flag for flag in body["flags"] if flag["kind"] == "defect_found"]
    assert [(f["label"], f["photo"]) for f in defects] == [("MT_Blob", 2)]
    assert defects[0]["score"] >= defects[0]["threshold"]  # the blob against MT_Free
    assert body["decision"]["refund"] == "hold_for_review"
    queued = client.get("/v1/review-queue", params={"flag": "defect_found"})
    assert queued.status_code == 200 and [item["id"] for item in queued.json()["items"]] == [body["id"]]
    page = client.get(f"/ui/items/{body['id']}")
    assert page.status_code == 200 and "defect found: MT Blob" in page.text
    evidence = client.get(f"/v1/inspections/{body['id']}/evidence").text
    assert "the head&#39;s own call" in evidence
    # a good photo alone raises none
    alone = client.post("/v1/inspections", data={"return_id": "RMA-9", "category": "tile"},
                        files=[("photos", ("good.png", good, "image/png"))]).json()
    assert not [flag for flag in alone["flags"] if flag["kind"] == "defect_found"]


def test_a_policy_naming_what_the_model_cannot_say_is_reported_at_load(
        tile: tuple[Path, Path], make_app: Any, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    """A misspelt label makes a rule silently never match: the service logs it when it loads the
    model and `/v1/models/current` lists it (notes, not errors: the default policy's grades
    mean nothing to a tile model, and it still serves)."""
    import yaml

    from inspection.decide import DEFAULT_POLICY
    raw = yaml.safe_load(DEFAULT_POLICY.read_text())
    raw["rules"] = [{"name": "clean", "when": {"call_in": {"defect": ["MT_free"]}},
                     "disposition": "restock", "refund": "approve"}, *raw["rules"]]
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(raw))
    with caplog.at_level("WARNING"):
        client = make_app(tile[0], api_keys="", dev_mode=True, policy_file=policy)
    notes = client.get("/v1/models/current").json()["policy_notes"]
    assert notes[0].startswith("rule 'clean' names ['MT_free'], not labels of head 'defect'")
    assert any("rule 'damaged' reads head 'condition', which this model does not have" in note
               for note in notes)
    assert "rule 'clean' names ['MT_free']" in caplog.text


def test_calibrate_fits_defect_found_for_a_recall_target_on_what_is_served(
        tile: tuple[Path, Path], tmp_path: Path) -> None:
    """`calibrate --target defect_recall=R` chooses a threshold on P(any defect) of each val
    item, the second opinion weighed in as served; the evidence says how it was chosen; a later
    calibrate that does not ask for it drops it (it was fitted on the old temperatures)."""
    import shutil

    from inspection.card import read_card
    from inspection.decide import load_policy
    from inspection.threshold_origin import threshold_origin
    bundle = tmp_path / "bundle"
    shutil.copytree(tile[0], bundle)
    base = ["calibrate", "--bundle", str(bundle), "--manifest", str(tile[1])]
    assert cli([*base, "--as-category", "tile", "--target", "defect_recall=1.0"]) == 0
    card = read_card(bundle)
    limit = card.thresholds["defect_found"]["defect"]
    achieved = card.calibration["achieved"]["defect_recall"]
    assert (achieved["recall"], achieved["items_with_defect"], achieved["items_without"]) == (1.0, 3, 4)
    # with the opinion the blobs stand apart from the goods: none of the 4 val goods is flagged
    assert achieved["false_flag_rate"] == 0.0 and 0.0 < limit < 1.0
    origin = threshold_origin("defect_found", "MT_Blob", "tile", card, load_policy())
    assert f"a threshold of {limit:.3f} on defect's probability of any defect" in origin
    assert "defect_recall=1.0 (achieved 100.0% of the items with a defect, 0.0% of those" in origin
    assert cli([*base, "--as-category", "tile"]) == 0
    assert "defect_found" not in read_card(bundle).thresholds
    # without the category no detector applies: the threshold is on the head's own probabilities
    assert cli([*base, "--target", "defect_recall=1.0"]) == 0
    assert read_card(bundle).thresholds["defect_found"]["defect"] != pytest.approx(limit, abs=1e-3)
    with pytest.raises(InputError, match="unknown target 'colour_recall'"):
        from training.calibrate import parse_targets
        parse_targets(["colour_recall=0.9"], TILE)
