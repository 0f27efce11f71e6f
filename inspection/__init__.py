"""returns-inspection: look at photos of returned products and say what came back.

`inspection` is the serving side and the contracts shared with training (taxonomy, manifest,
model card, preprocessing). It never imports torch; `training` does.
"""

__version__ = "0.1.0"
