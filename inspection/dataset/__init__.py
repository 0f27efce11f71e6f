"""Dataset tooling (no torch): `synth` draws the synthetic sample set, `importer` builds a manifest
from label folders, `validate` reports every problem in one, `split` makes seeded, stratified
splits grouped by item. Each module is a `returns-inspect dataset ...` command."""
