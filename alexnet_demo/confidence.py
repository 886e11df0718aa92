"""When to answer "not sure" about a drawn digit: a low top probability, or ink too bold to be pen strokes."""
from __future__ import annotations

from .preprocessing import ink_box, ink_map, stroke_fraction

# Measured with bench/drawing.py (1,000 re-drawn MNIST digits per cell, the 22 cells with brush <= 30% of the height,
# 3 styles; 272 letters, 200 scribbles, 100 filled blobs, all drawn as on the Sketchpad). Top probability below
# SURE: 1% of digits, 32% of letters, 46% of scribbles, 78% of blobs (below 0.5: 0.2%, 12%, 22%, 54%).
SURE = 0.7
# Stroke width over the ink's longer side (preprocessing.stroke_fraction). MNIST's boldest 1% is 0.22, re-drawn
# digits' 99th percentile 0.32; a filled blob's median is 0.32 (a filled disc: 0.5). Above BLOB: 0.2% of the
# target cells' digits, no letter or scribble, 22% of blobs (with SURE: 82%), and most digits too small for their brush
# (60 px tall with a 24 px brush: about 60%, read right 93% of the time; with 36 px: all, read right 27%).
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
