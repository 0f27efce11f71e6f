"""The API's JSON shapes, layered like FastAPI's full-stack template: what a client sends
(`*Create`), what is shared (`*Base`), what the API answers (`*Public`). These models are the
OpenAPI documentation of the inspection answer."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from inspection.service.validation import DISPOSITION_MAX, LABEL_MAX, LINE_PATTERN, NOTE_MAX

Source = Literal["station", "customer"]
Label = Annotated[str, StringConstraints(min_length=1, max_length=LABEL_MAX, pattern=LINE_PATTERN)]
MAX_LABELS_PER_HEAD = 32  # more than any head has labels; duplicates are refused anyway
MAX_HEADS = 16


class QualityCheckPublic(BaseModel):
    name: str = Field(description="too_small | blurred | too_dark | too_bright")
    ok: bool
    value: float = Field(description="the measured value (pixels, sharpness or mean brightness)")
    threshold: float
    reason: str = Field(description="a polite, specific request for a better photo; empty when ok")


class ConditionPublic(BaseModel):
    grade: str | None = Field(description="A as new, B like new, C used, D damaged")
    confidence: float = Field(description="calibrated probability of the grade")
    probabilities: dict[str, float]


class PhotoPublic(BaseModel):
    index: int
    filename: str | None
    format: str
    width: int = Field(description="as uploaded, before orientation")
    height: int
    usable: bool = Field(description="false when any quality check failed")
    quality: list[QualityCheckPublic]
    condition: ConditionPublic | None
    damages: dict[str, float] = Field(description="damage label -> calibrated probability")
    accessories: dict[str, float] = Field(description="accessory label -> probability visible")
    probabilities: dict[str, dict[str, float]] | None = Field(
        None, description="every head, label -> probability: only with `?detail=full` (the default "
                          "answer has them once, under condition, damages and accessories)")
    item_similarity: float | None = Field(
        description="cosine similarity to the declared category's nearest reference")
    anomaly_score: float | None
    anomaly_defect_probability: float | None = Field(
        None, description="P(defect) the anomaly score gives; weighed into the probabilities of "
                          "heads with a `no_defect` label (the card's second opinion)")
    closest_reference: int | None = Field(
        None, description="index of the SKU's reference photo most like this one (catalog)")
    closest_reference_sha256: str | None = Field(None, description="that photo's sha256")


class DamagePublic(BaseModel):
    label: str
    score: float = Field(description="highest probability any usable photo gave it")
    threshold: float
    found: bool


class HeadCallPublic(BaseModel):
    label: str
    confidence: float
    probabilities: dict[str, float]
    photo: int = Field(description="the photo the call comes from: with a `no_defect` label, the "
                                   "one least likely to show no defect")


class ItemPublic(BaseModel):
    condition: ConditionPublic
    damages: list[DamagePublic]
    accessories_visible: list[str]
    missing_accessories: list[str] = Field(description="the category's kit minus what any photo shows")
    photos_used: list[int] = Field(description="photos the item assessment is based on (usable ones)")
    heads: dict[str, HeadCallPublic] = Field(
        default_factory=dict, description="the item's call on each single-label head beyond "
                                          "condition (a taxonomy's own, e.g. MVTec's `defect`)")


class FlagPublic(BaseModel):
    kind: str = Field(description="damage_found | defect_found | accessory_missing | "
                                  "low_confidence | photo_unusable | item_mismatch | anomaly | "
                                  "changed_since_request | new_damage_since_request "
                                  "(item_mismatch and anomaly found against a SKU's catalog "
                                  "photos carry the SKU as `label`; defect_found, from a head "
                                  "with a no-defect label, carries the likeliest defect)")
    reason: str
    score: float = Field(description="the score that raised it")
    threshold: float
    label: str | None = None
    photo: int | None = Field(None, description="index of the photo that raised it (heatmap)")


class SkippedCheckPublic(BaseModel):
    kind: str
    reason: str = Field(description="why this check was not evaluated")


class DecisionPublic(BaseModel):
    disposition: str = Field(description="restock | open_box | refurbish | liquidate | recycle | "
                                         "manual_review (from the policy's rules), or "
                                         "retake_photos when no photo is usable")
    refund: str = Field(description="approve | hold_for_review")
    rule: str
    reasons: list[str]


class ModelPublic(BaseModel):
    name: str
    version: str
    model_id: str
    card_sha256: str | None = Field(None, description="sha256 of the model card as served "
                                                      "(canonical JSON, thresholds included)")


class PolicyPublic(BaseModel):
    sha256: str = Field(description="the decision policy in effect (canonical JSON): its version")


class PhotoRefPublic(BaseModel):
    inspection_id: str
    photo: int
    sha256: str | None = Field(None, description="the other side's photo: its hash outlives it")


class CaseCheckPublic(BaseModel):
    kind: str = Field(description="changed_since_request | new_damage_since_request")
    score: float = Field(description="same-item similarity of the closest pair (changed) or the "
                                     "largest rise of a damage probability (new damage)")
    threshold: float | None = Field(description="fitted by `returns-inspect case fit`; null: none")
    flagged: bool
    label: str | None = Field(None, description="the damage label (new damage)")
    reason: str
    station: PhotoRefPublic = Field(description="the dock's photo of the pair")
    customer: PhotoRefPublic = Field(description="the customer's photo of the pair")
    details: dict[str, float]


class CaseComparisonPublic(BaseModel):
    status: Literal["compared", "not_compared"]
    reason: str = Field(description="why it was not compared (one-sided return, purged photos)")
    against: str = Field(description="the other side: customer | station")
    against_inspections: list[str]
    missing_photos: list[str] = Field(description="the other side's photos no longer stored")
    checks: list[CaseCheckPublic]
    compared: dict[str, int] = Field(description="photos compared per side")


class TimingsPublic(BaseModel):
    """Where the time went, in milliseconds (also the `returns_stage_seconds` histogram).
    Answers stored before a stage was timed lack it."""

    decode_ms: float
    inference_ms: float = Field(description="the model (ONNX Runtime), including preprocessing")
    anomaly_ms: float | None = Field(None, description="the category's anomaly detector")
    queue_ms: float | None = Field(None, description="waiting for a free compute slot (one per core)")
    storage_ms: float | None = Field(None, description="writing the photos to the photo store: "
                                     "what was left of it after scoring (it runs alongside)")
    database_ms: float | None = Field(None, description="saving the inspection (POST answer only)")
    total_ms: float = Field(description="from the parsed request to the answer")


class ClosestReferencePublic(BaseModel):
    photo: int = Field(description="the returned photo least like the SKU's references")
    reference: int = Field(description="index of its closest reference photo "
                                       "(GET /v1/catalog/{sku}/photos/{reference})")
    similarity: float
    sha256: str | None = Field(None, description="of that reference photo, as evidence: the SKU's "
                                                 "photos may be replaced later")


class ComparisonPublic(BaseModel):
    basis: Literal["sku", "category", "none"] = Field(
        description="what the photos were compared with: the SKU's reference photos, the "
                    "category's references and detector, or nothing")
    sku: str | None
    note: str = Field("", description="why a declared SKU's references were not used")
    closest_reference: ClosestReferencePublic | None = None
    similarity_threshold: float | None = None
    anomaly_threshold: float | None = None


class InspectionResult(BaseModel):
    category: str | None
    photos: list[PhotoPublic]
    item: ItemPublic
    flags: list[FlagPublic]
    skipped_checks: list[SkippedCheckPublic]
    comparison: ComparisonPublic | None = None
    decision: DecisionPublic
    model: ModelPublic
    policy: PolicyPublic | None = None
    case_comparison: CaseComparisonPublic | None = Field(
        None, description="customer <-> dock comparison of the return, when this inspection "
                          "was made (GET /v1/returns/{return_id} for the whole case)")
    timings: TimingsPublic


class ReviewBase(BaseModel):
    decision: Literal["confirm", "correct"]
    # Head names are checked against the taxonomy (routes/review.py), so any string is schema-valid.
    labels: dict[str, Annotated[list[Label], Field(max_length=MAX_LABELS_PER_HEAD)]] = Field(
        default_factory=dict, max_length=MAX_HEADS,
        description="corrected labels per head (e.g. {\"condition\": [\"C\"], \"damage\": "
                    "[\"scratch\"]}); heads left out keep the model's labels")
    disposition: str | None = Field(None, max_length=DISPOSITION_MAX, pattern=LINE_PATTERN,
                                    description="one of the policy's dispositions")
    note: str | None = Field(None, max_length=NOTE_MAX)


class ReviewCreate(ReviewBase):
    override: bool = Field(False, description="admin only: replace an existing review")


class ReviewPublic(ReviewBase):
    id: int
    reviewer: str | None = Field(description="who reviewed; not shown to customers")
    override: bool
    created_at: datetime


class InspectionPublic(InspectionResult):
    id: str
    created_at: datetime
    return_id: str
    sku: str | None
    source: Source
    status: Literal["clear", "flagged", "reviewed"]
    review: ReviewPublic | None = Field(None, description="the latest review, if any")


class QueueItemPublic(BaseModel):
    id: str
    created_at: datetime
    return_id: str
    sku: str | None
    category: str | None
    source: str
    flags: list[FlagPublic]
    disposition: str
    refund: str
    photo_count: int


class QueuePage(BaseModel):
    items: list[QueueItemPublic]
    total: int = Field(description="flagged, unreviewed items matching the filters")
    limit: int
    offset: int
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next page")


class ReloadRequest(BaseModel):
    bundle: str | None = Field(None, description="bundle directory; default: the current one")


class ModelStatus(BaseModel):
    name: str
    version: str
    model_id: str
    bundle: str
    checks_unavailable: dict[str, str]
    policy_notes: list[str] = Field(default_factory=list, description=(
        "what the policy's rules name that this model cannot say (a head it lacks, a label not "
        "among its head's): such a rule never matches on it"))


class CatalogPhotoPublic(BaseModel):
    index: int
    filename: str | None
    sha256: str
    url: str


class CatalogReferencePublic(BaseModel):
    model_id: str
    revision: int = Field(description="the set of photos it was built from")
    built_at: datetime
    build_ms: float
    bank_size: int = Field(description="patch memory rows (coreset)")
    thresholds: dict[str, object] = Field(
        description="similarity and anomaly thresholds fitted leave-one-out, their target")
    current: bool = Field(description="built by the served model from the current photos")


class CatalogSkuPublic(BaseModel):
    sku: str
    category: str | None
    display_name: str | None
    accessory_kit: list[str] | None
    revision: int
    created_at: datetime
    updated_at: datetime
    status: Literal["ready", "building"] = Field(
        description="ready: the served model's reference exists; building: being rebuilt")
    photo_count: int
    photos: list[CatalogPhotoPublic]
    references: list[CatalogReferencePublic]
    thresholds: dict[str, object] | None


class CatalogRegistered(CatalogSkuPublic):
    left_out: list[dict[str, object]] = Field(
        default_factory=list, description="photos refused as unusable, with the reasons")


class CatalogList(BaseModel):
    items: list[CatalogSkuPublic]
