"""The taxonomy: which heads a model has, their labels, and each category's accessory kit.

Label sets belong to the user: they live in a YAML file, never in code. Three head names have a
meaning to the service — `condition` (the grade), `damage` and `accessories` — and any other head
(say `defect` for MVTec AD) is scored and reported as is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from inspection.errors import InputError
from inspection.yamlfile import read_yaml

HeadType = Literal["single", "multi"]
DEFAULT_TAXONOMY = Path(__file__).parent / "defaults" / "taxonomy.yaml"


@dataclass(frozen=True)
class Head:
    """One output of the model: `single` is a softmax over labels, `multi` one sigmoid each."""

    name: str
    type: HeadType
    labels: tuple[str, ...]
    descriptions: dict[str, str] = field(default_factory=dict)

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
    return Head(name=str(name), type=head_type, labels=tuple(labels), descriptions=descriptions)


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
