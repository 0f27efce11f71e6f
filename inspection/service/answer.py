"""How much of an inspection the API answers with.

By default each photo's answer carries its probabilities once: `condition.probabilities`,
`damages` and `accessories`. The full per-head table (`probabilities`, the same numbers again,
plus any head beyond those three) is kept with every photo row and comes back with
`?detail=full`. The default answer is 14% (1 photo) to 25% (4 photos) smaller (BENCHMARKS.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from inspection.service.models import Photo

Detail = Literal["default", "full"]
DETAIL_QUERY = ("`full` adds each photo's `probabilities` (every head, label -> probability); "
                "the default answer has them once, under `condition`, `damages`, `accessories`")


def shape_answer(answer: dict[str, Any], detail: Detail, photo_rows: Sequence[Photo]) -> dict[str, Any]:
    stored = {row.index: row.predictions.get("probabilities") for row in photo_rows}
    photos = []
    for photo in answer.get("photos", []):
        shaped = {key: value for key, value in photo.items() if key != "probabilities"}
        if detail == "full":
            shaped["probabilities"] = photo.get("probabilities") or stored.get(photo["index"])
        photos.append(shaped)
    return {**answer, "photos": photos}
