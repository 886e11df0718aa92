"""When to answer "not sure" about a drawn digit: a low top probability, or ink too bold to be pen strokes."""
from __future__ import annotations

from .preprocessing import ink_box, ink_map, stroke_fraction

# Measured with bench/drawing.py on re-drawn MNIST digits (brush <= 30% of the height), letters, scribbles and filled
# blobs, all drawn as on the Sketchpad. Top probability below SURE: 6% of digits (80% of the misread ones), 29% of
# letters, 46% of scribbles, 65% of blobs (0.5: 3%, 10%, 20%, 38%).
SURE = 0.7
# Stroke width over the ink's longer side (preprocessing.stroke_fraction). MNIST's boldest 1% is 0.22, re-drawn
# digits' 99th percentile 0.31; a filled blob's median is 0.32 (a filled disc: 0.5). Above BLOB: 0.1% of digits,
# 64%->80% of blobs (with SURE), no letter or scribble.
BLOB = 0.35


def doubt(image, probabilities: dict[str, float], sure: float = SURE) -> str | None:
    """Why this drawing should get "not sure" rather than its top digit; None when the answer can stand."""
    if not probabilities:
        return None  # nothing drawn: not a question of confidence
    crop = ink_box(ink_map(image))
    if crop is not None and stroke_fraction(crop) > BLOB:
        return "the ink is a filled shape, not pen strokes"
    top = max(probabilities.values())
    if top < sure:
        return f"the best guess has only {top:.0%}"
    return None
