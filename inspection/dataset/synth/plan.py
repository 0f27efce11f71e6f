"""What each synthetic item is, decided before anything is drawn.

Grades are visual and consistent: A = pristine with the gold factory seal and a film sheen,
B = pristine without a seal, C = light wear only (scratch / stain / dent, small), D = heavy
damage (crack / tear / broken part, maybe plus wear). Categories and grades are dealt in shuffled
blocks of every (category, grade) pair, so the classes are balanced to within one block.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from inspection.dataset.synth.accessories import DRAWERS as ACCESSORY_DRAWERS
from inspection.dataset.synth.damage import HEAVY, LIGHT, possible
from inspection.dataset.synth.products import SKU_COLOURS, ProductStyle
from inspection.errors import InputError
from inspection.taxonomy import Taxonomy

DRAWABLE_CATEGORIES = tuple(SKU_COLOURS)
ACCESSORY_KEPT = 0.7  # chance each kit part came back with the item
MAX_PHOTOS_PER_ITEM = 3
WHERE = "--taxonomy"  # the only way a taxonomy reaches dataset synth


@dataclass(frozen=True)
class ItemSpec:
    seed: int
    index: int
    category: str
    style: ProductStyle
    grade: int  # 0..3 = the condition head's labels in order (A, B, C, D by default)
    damage: tuple[str, ...]
    accessories: tuple[str, ...]  # the kit parts that came back (drawn in every photo)
    first_photo: int
    photos: int

    @property
    def item_id(self) -> str:
        return f"item-{self.index:05d}"

    @property
    def sealed(self) -> bool:
        return self.grade == 0


def before_damage(spec: ItemSpec) -> ItemSpec:
    """The same item as it was before its damage (the customer's photo of a return damaged in
    transit): same product, colour and kit, drawn from the item's own random streams, without
    the marks; a damaged grade becomes B (opened, no wear)."""
    return replace(spec, grade=min(spec.grade, 1), damage=())


def item_rng(seed: int, index: int, purpose: int = 0) -> np.random.Generator:
    """Per-item randomness, the same in every photo of the item and in every worker."""
    return np.random.default_rng([seed, 1, index, purpose])


def photo_rng(seed: int, photo_index: int) -> np.random.Generator:
    return np.random.default_rng([seed, 2, photo_index])


def check_taxonomy(taxonomy: Taxonomy) -> tuple[str, ...]:
    """The categories the synthetic set can draw for this taxonomy, or an InputError."""
    for name in ("condition", "damage", "accessories"):
        if not taxonomy.has_head(name):
            raise InputError(f"dataset synth needs a `{name}` head; this taxonomy has {taxonomy.head_names}",
                             WHERE)
    if len(taxonomy.head("condition").labels) != 4:
        raise InputError("dataset synth draws four grades; the `condition` head must have 4 labels "
                         "(best to worst)", WHERE)
    categories = tuple(taxonomy.categories) or DRAWABLE_CATEGORIES
    unknown = [c for c in categories if c not in DRAWABLE_CATEGORIES]
    if unknown:
        msg = f"dataset synth cannot draw categories {unknown}; it draws {list(DRAWABLE_CATEGORIES)}"
        raise InputError(msg, WHERE)
    kit_parts = {part for category in categories for part in taxonomy.kits.get(category, ())}
    odd_parts = sorted(kit_parts - set(ACCESSORY_DRAWERS))
    if odd_parts:
        msg = f"dataset synth cannot draw accessories {odd_parts}; it draws {list(ACCESSORY_DRAWERS)}"
        raise InputError(msg, WHERE)
    return categories


def _damage(category: str, grade: int, labels: tuple[str, ...], rng: np.random.Generator) -> tuple[str, ...]:
    light = [k for k in LIGHT if k in labels and possible(k, category)]
    heavy = [k for k in HEAVY if k in labels and possible(k, category)] or light
    if grade < 2 or not light:
        return ()
    if grade == 2:
        chosen = rng.choice(light, size=min(len(light), int(rng.integers(1, 3))), replace=False)
        return tuple(sorted(str(kind) for kind in chosen))
    kinds = {str(rng.choice(heavy))}
    if rng.random() < 0.35 and light:
        kinds.add(str(rng.choice(light)))
    if rng.random() < 0.15:
        kinds.add(str(rng.choice(heavy)))
    return tuple(sorted(kinds))


def plan_items(taxonomy: Taxonomy, photos: int, seed: int) -> list[ItemSpec]:
    categories = check_taxonomy(taxonomy)
    damage_labels = taxonomy.head("damage").labels
    pairs = [(c, g) for c in categories for g in range(4)]
    items: list[ItemSpec] = []
    next_photo = 0
    while next_photo < photos:
        index = len(items)
        block = np.random.default_rng([seed, 0, index // len(pairs)]).permutation(len(pairs))
        category, grade = pairs[block[index % len(pairs)]]
        rng = item_rng(seed, index)
        style = ProductStyle(category, int(rng.integers(len(SKU_COLOURS[category]))),
                             tuple(rng.uniform(-1, 1, 3)))
        kit = taxonomy.kits.get(category, ())
        kept = tuple(part for part in kit if rng.random() < ACCESSORY_KEPT)
        count = min(int(rng.integers(1, MAX_PHOTOS_PER_ITEM + 1)), photos - next_photo)
        damage = _damage(category, grade, damage_labels, rng)
        items.append(ItemSpec(seed, index, category, style, grade, damage, kept, next_photo, count))
        next_photo += count
    return items
