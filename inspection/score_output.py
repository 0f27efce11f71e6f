"""A results folder that a killed re-scoring resumes: `part-NNNNN.parquet` + `part-NNNNN.jsonl`.

The items still to score are cut into parts of `part_size` items. A part's two files are
written only when every item in it has its result, each to a temporary name renamed into
place, the Parquet file last: a part whose Parquet file exists is complete. A re-run reads the
item ids of the complete parts, skips those items and numbers its parts after the highest
one, so after any kill and resume every item's result is in exactly one part. `_scoring.json`
records the model that scored the folder; resuming with another model is refused rather than
mixing two models' answers in one backlog.

Parquet holds one row per item: the columns to filter on (grade, disposition, flags, error)
and `result`, the whole answer as JSON. The JSONL file holds the same records as
`returns-inspect score --out results.jsonl` writes.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from inspection.atomic import replacing
from inspection.errors import InputError
from inspection.score_sources import Item

SCORING_FILE = "_scoring.json"
PART_GLOB = "part-*.parquet"


@dataclass
class Part:
    name: str  # part-00012
    item_ids: set[str]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return set(self.records) == self.item_ids


def written_item_ids(out: Path) -> set[str]:
    """Item ids in the folder's complete parts (a half-written part has no .parquet yet)."""
    try:
        import pyarrow.parquet as pq
    except ModuleNotFoundError:
        raise InputError("a results folder is Parquet: pip install -e '.[ray]' (or pyarrow), "
                         "or give --out a .jsonl file", "--out") from None

    ids: set[str] = set()
    for path in sorted(out.glob(PART_GLOB)):
        ids.update(pq.read_table(path, columns=["item_id"]).column("item_id").to_pylist())
    return ids


def check_model(out: Path, model_id: str, model_name: str) -> None:
    """Claim an empty folder for this model, or refuse one scored by another."""
    out.mkdir(parents=True, exist_ok=True)
    marker = out / SCORING_FILE
    if marker.is_file():
        recorded = json.loads(marker.read_text(encoding="utf-8"))
        if recorded.get("model_id") != model_id:
            raise InputError(f"this folder holds results of model {recorded.get('model_id')}, not "
                             f"{model_id}: score into a new folder", out)
        return
    marker.write_text(json.dumps({"model_id": model_id, "model": model_name}) + "\n",
                      encoding="utf-8")


def plan_parts(out: Path, pending: Sequence[Item], part_size: int) -> list[Part]:
    """Cut the pending items into parts numbered after the folder's highest part."""
    numbers = [int(p.stem.split("-")[1]) for p in out.glob(PART_GLOB)]
    start = max(numbers, default=-1) + 1
    return [Part(f"part-{start + k:05d}", {item.item_id for item in pending[i:i + part_size]})
            for k, i in enumerate(range(0, len(pending), part_size))]


class PartWriter:
    """Collects results in any order and writes each part the moment it is complete."""

    def __init__(self, out: Path, parts: list[Part]):
        self.out = out
        self.part_of = {item_id: part for part in parts for item_id in part.item_ids}
        self.written = 0

    def add(self, record: dict[str, Any]) -> None:
        part = self.part_of[record["item_id"]]
        part.records[record["item_id"]] = record
        if part.complete:
            write_part(self.out, part)
            self.written += 1


def write_part(out: Path, part: Part) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [part.records[item_id] for item_id in sorted(part.records)]
    jsonl = out / f"{part.name}.jsonl"
    _atomic(jsonl, lambda path: path.write_text(
        "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8"))
    table = pa.Table.from_pylist([parquet_row(r) for r in records], schema=parquet_schema())
    _atomic(out / f"{part.name}.parquet", lambda path: pq.write_table(table, path))


def _atomic(target: Path, write: Any) -> None:
    with replacing(target) as temporary:
        write(temporary)


def parquet_row(record: dict[str, Any]) -> dict[str, Any]:
    item = record.get("item") or {}
    decision = record.get("decision") or {}
    return {
        "item_id": record["item_id"], "category": record.get("category"), "sku": record.get("sku"),
        "images": record.get("images", []), "error": record.get("error"),
        "grade": (item.get("condition") or {}).get("grade"),
        "missing_accessories": item.get("missing_accessories", []),
        "disposition": decision.get("disposition"), "refund": decision.get("refund"),
        "flags": [flag["kind"] for flag in record.get("flags", [])],
        "model_id": (record.get("model") or {}).get("model_id"),
        "result": json.dumps(record),
    }


def parquet_schema() -> Any:
    import pyarrow as pa

    text, texts = pa.string(), pa.list_(pa.string())
    return pa.schema([("item_id", text), ("category", text), ("sku", text), ("images", texts),
                      ("error", text), ("grade", text), ("missing_accessories", texts),
                      ("disposition", text), ("refund", text), ("flags", texts),
                      ("model_id", text), ("result", text)])
