"""Feature-map grids: known answers for the tile layout, the scale, the gaps and the palette pictures."""
import io

import numpy as np
import torch
from PIL import Image

from alexnet_demo.inspection import GAP, PALETTE, channel_grid, feature_gallery, grid_indices, palette_image


def test_four_channels_tile_two_by_two_scaled_to_the_layer_max_with_gaps():
    fmap = torch.tensor([0.0, 1.0, 2.0, 4.0]).reshape(4, 1, 1).expand(4, 24, 24).clone()  # no upscale at 24 px
    indices = grid_indices(fmap)
    assert indices.shape == (2 * 25 + 1, 2 * 25 + 1)  # 2x2 tiles of 24 px, 1 px gaps around and between
    assert indices[0].tolist() == [GAP] * 51 and indices[:, 25].tolist() == [GAP] * 51
    tiles = [indices[1, 1], indices[1, 26], indices[26, 1], indices[26, 26]]
    assert tiles == [0, round(254 / 4), round(254 / 2), 254]  # 0 .. the layer's max (4.0) onto 0 .. 254


def test_small_maps_are_blown_up_so_a_person_can_see_them():
    assert grid_indices(torch.rand(4, 3, 3)).shape == (2 * 25 + 1, 2 * 25 + 1)  # 3x3 -> 24x24 tiles


def test_a_silent_layer_is_all_black_not_an_error():
    rgb = channel_grid(torch.zeros(4, 5, 5))
    inner = rgb[1:-1, 1:-1].reshape(-1, 3)
    assert rgb.dtype == np.uint8 and set(map(tuple, inner)) <= {tuple(PALETTE[0]), (255, 255, 255)}


def test_palette_png_decodes_to_the_same_colours_as_the_rgb_grid():
    fmap = torch.rand(96, 11, 11)
    buffer = io.BytesIO()
    palette_image(grid_indices(fmap)).save(buffer, format="png")
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))
    assert np.array_equal(decoded, channel_grid(fmap))


def test_gallery_has_one_captioned_picture_per_layer():
    maps = {f"conv{i}": torch.rand(8, 6, 6) for i in range(1, 6)}
    gallery = feature_gallery(maps)
    assert [caption.split(":")[0] for _, caption in gallery] == list(maps)
    assert all(picture.mode == "P" for picture, _ in gallery)
