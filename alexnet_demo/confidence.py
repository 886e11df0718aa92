"""When to answer "not sure" about a drawn digit: a low top probability, or ink too bold to be pen strokes."""
from __future__ import annotations

from .preprocessing import ink_box, ink_map, stroke_fraction

# Measured with bench/drawing.py (200 re-drawn MNIST digits per cell, the 22 cells with brush <= 30% of the height,
# 3 styles; 272 letters, 200 scribbles, 100 filled blobs, all drawn as on the Sketchpad). Top probability below
# SURE: 2% of digits, 29% of letters, 46% of scribbles, 65% of blobs (below 0.5: 1%, 10%, 20%, 38%).
SURE = 0.7
# Stroke width over the ink's longer side (preprocessing.stroke_fraction). MNIST's boldest 1% is 0.22, re-drawn
# digits' 99th percentile 0.32; a filled blob's median is 0.32 (a filled disc: 0.5). Above BLOB: 0.11% of the
# digits, no letter or scribble, 64% of blobs (with SURE: 80%), and most digits too small for their brush
# (60 px tall with a 24 px brush: 60%, read right 63% of the time; with 36 px: 100%, read right 12%).
BLOB = 0.35


def doubt(image, probabilities: dict[str, float], sure: float = SURE) -> str | None:
    """Why this drawing should get "not sure" rather than its top digit; None when the answer can stand."""
    if not probabilities:
        return None  # nothing drawn: not a question of confidence
    crop = ink_box(ink_map(image))
    if crop is not None and stroke_fraction(crop) > BLOB:
        return "the strokes are too bold for their size: a filled shape, or a digit to draw bigger"
    top = max(probabilities.values())
    if top < sure:
        return f"the best guess has only {top:.0%}"
    return None
