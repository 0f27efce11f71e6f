"""The taxonomy: which heads a model has, their labels, and each category's accessory kit.

Label sets belong to the user: they live in a YAML file, never in code. Three head names have a
meaning to the service — `condition` (the grade), `damage` and `accessories` — and any other head
(say `defect` for MVTec AD) is scored and reported as is.

A single-label head may name its `no_defect` label (MVTec's `good`, magnetic tile's `MT_Free`):
the photos that show no defect. Good-only anomaly detectors are fitted on them, synthetic damage
is painted on them, and the anomaly score's second opinion (inspection.second_opinion) weighs
that label against the others. Undeclared, a label named `good` is it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from inspection.atomic import replacing
from inspection.errors import InputError
from inspection.yamlfile import read_yaml

HeadType = Literal["single", "multi"]
GOOD_CONDITIONS = frozenset({"A", "B"})  # grades of an item without damage
SERVICE_HEADS = ("condition", "damage", "accessories")  # the heads with a meaning to the service
DEFAULT_TAXONOMY = Path(__file__).parent / "defaults" / "taxonomy.yaml"
TAXONOMY_FILE = "taxonomy.yaml"  # a manifest's taxonomy, in the manifest's folder


@dataclass(frozen=True)
class Head:
    """One output of the model: `single` is a softmax over labels, `multi` one sigmoid each."""

    name: str
    type: HeadType
    labels: tuple[str, ...]
    descriptions: dict[str, str] = field(default_factory=dict)
    no_defect: str | None = None  # the label of photos without a defect (single-label heads)

    def index(self, label: str) -> int:
        return self.labels.index(label)


@dataclass(frozen=True)
class Taxonomy:
    name: str
    heads: tuple[Head, ...]
    kits: dict[str, tuple[str, ...]]  # category -> accessories a complete return contains

    def head(self, name: str) -> Head:
        for head in self.heads:
            if head.name == name:
                return head
        msg = f"taxonomy {self.name!r} has no head {name!r}; heads: {self.head_names}"
        raise KeyError(msg)

    def has_head(self, name: str) -> bool:
        return any(head.name == name for head in self.heads)

    @property
    def head_names(self) -> list[str]:
        return [head.name for head in self.heads]

    @property
    def categories(self) -> list[str]:
        return list(self.kits)

    def missing_accessories(self, category: str | None, visible: set[str]) -> list[str]:
        """Expected kit minus what any photo shows; unknown category -> nothing expected."""
        kit = self.kits.get(category or "", ())
        return [part for part in kit if part not in visible]

    def to_dict(self) -> dict[str, Any]:
        heads: dict[str, Any] = {}
        for head in self.heads:
            entry: dict[str, Any] = {"type": head.type, "labels": list(head.labels)}
            if head.descriptions:
                entry["descriptions"] = dict(head.descriptions)
            if head.no_defect is not None:
                entry["no_defect"] = head.no_defect
            heads[head.name] = entry
        categories = {name: {"kit": list(kit)} for name, kit in self.kits.items()}
        return {"name": self.name, "heads": heads, "categories": categories}

    @classmethod
    def from_dict(cls, data: Any, where: str = "taxonomy") -> Taxonomy:
        if not isinstance(data, dict) or not isinstance(data.get("heads"), dict):
            raise InputError("a taxonomy needs a mapping with a `heads:` section", where)
        heads = tuple(_parse_head(name, spec, where) for name, spec in data["heads"].items())
        if not heads:
            raise InputError("a taxonomy needs at least one head", where)
        kits = _parse_kits(data.get("categories") or {}, heads, where)
        return cls(name=str(data.get("name", "unnamed")), heads=heads, kits=kits)


def _parse_head(name: str, spec: Any, where: str) -> Head:
    if not isinstance(spec, dict):
        raise InputError(f"head {name!r} must be a mapping with `type` and `labels`", where)
    head_type = spec.get("type")
    if head_type not in ("single", "multi"):
        raise InputError(f"head {name!r}: type must be 'single' or 'multi', got {head_type!r}", where)
    labels = spec.get("labels")
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels):
        raise InputError(f"head {name!r}: labels must be a non-empty list of strings", where)
    if len(set(labels)) != len(labels):
        raise InputError(f"head {name!r}: labels repeat: {labels}", where)
    if head_type == "single" and len(labels) < 2:
        raise InputError(f"head {name!r}: a single-label head needs at least 2 labels", where)
    descriptions = {str(k): str(v) for k, v in (spec.get("descriptions") or {}).items()}
    return Head(name=str(name), type=head_type, labels=tuple(labels), descriptions=descriptions,
                no_defect=_no_defect_label(name, head_type, labels, spec.get("no_defect"), where))


def _no_defect_label(name: str, head_type: str, labels: list[str], declared: Any,
                     where: str) -> str | None:
    """The declared `no_defect` label, else `good` where a single-label head has it."""
    if declared is None:
        return "good" if head_type == "single" and "good" in labels else None
    if head_type != "single":
        raise InputError(f"head {name!r}: `no_defect` needs a single-label head "
                         "(a multi-label head's photo without a defect has no label on)", where)
    if declared not in labels:
        raise InputError(f"head {name!r}: no_defect {declared!r} is not one of its labels {labels}",
                         where)
    return str(declared)


def _parse_kits(categories: Any, heads: tuple[Head, ...], where: str) -> dict[str, tuple[str, ...]]:
    if not isinstance(categories, dict):
        raise InputError("`categories` must map a category name to {kit: [...]}", where)
    accessory_labels = next((h.labels for h in heads if h.name == "accessories"), ())
    kits: dict[str, tuple[str, ...]] = {}
    for category, spec in categories.items():
        kit = (spec or {}).get("kit", []) if isinstance(spec, dict) else None
        if not isinstance(kit, list):
            raise InputError(f"category {category!r}: kit must be a list", where)
        unknown = [part for part in kit if part not in accessory_labels]
        if unknown:
            msg = f"category {category!r}: kit parts {unknown} are not `accessories` labels"
            raise InputError(msg, where)
        kits[str(category)] = tuple(kit)
    return kits


def load_taxonomy(path: str | Path | None = None) -> Taxonomy:
    """Read a taxonomy YAML file; None means the packaged default."""
    path = Path(path) if path is not None else DEFAULT_TAXONOMY
    return Taxonomy.from_dict(read_yaml(path, "taxonomy"), where=str(path))


def taxonomy_beside(manifest: str | Path) -> Path:
    """Where a manifest's taxonomy is looked for when none is named (validate, split, train), and
    where `dataset import` and `dataset split` put one: its folder's taxonomy.yaml."""
    return Path(manifest).parent / TAXONOMY_FILE


def other_taxonomy_at(path: Path, taxonomy: Taxonomy) -> str | None:
    """What `path` holds when it is not `taxonomy` (None: nothing, or the same taxonomy). A
    different file there is another dataset's in the same folder, or the user's own edits: the
    callers keep it rather than write over it, since every manifest beside it is read with it."""
    if not path.is_file():
        return None
    try:
        there = load_taxonomy(path)
    except InputError as exc:
        return f"a file that is not a valid taxonomy ({exc.detail})"
    if there == taxonomy:
        return None
    heads = "; ".join(f"{head.name}: {', '.join(head.labels)}" for head in there.heads)
    return f"the taxonomy {there.name!r} ({heads})"


def write_taxonomy(taxonomy: Taxonomy, path: Path) -> None:
    with replacing(path) as temporary:
        temporary.write_text(yaml.safe_dump(taxonomy.to_dict(), sort_keys=False), encoding="utf-8")


def shows_no_defect(labels: Mapping[str, Sequence[str]], taxonomy: Taxonomy | None = None) -> bool:
    """Whether a photo's labels say it shows no defect (the photos good-only detectors are fitted
    on and synthetic damage is painted on): condition A/B, no damage, and every other labelled
    head at its `no_defect` label (`good` for a head the taxonomy does not know, or without one).
    Accessories say nothing about defects."""
    for name, given in labels.items():
        if not given or name == "accessories":
            continue
        if name == "condition":
            if not set(given) <= GOOD_CONDITIONS:
                return False
            continue
        known = taxonomy is not None and taxonomy.has_head(name)
        no_defect = taxonomy.head(name).no_defect if known else "good"  # type: ignore[union-attr]
        if name == "damage" or tuple(given) != (no_defect,):
            return False
    return True
