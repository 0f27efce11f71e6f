"""Anomaly scoring from good photos only (PatchCore-style) and the patch features it reads."""
