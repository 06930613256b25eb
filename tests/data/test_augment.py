"""Random shifts of training images: whole-pixel moves, zero fill, one shift per image."""

import torch

from toolchain.data.augment import random_shift


def test_each_image_moves_by_its_own_shift_with_zero_fill():
    images = torch.zeros(400, 1, 7, 7)
    images[:, 0, 3, 3] = 1.0  # one lit pixel in the centre
    images[:, 0, 0, 0] = 2.0  # and one in the corner
    torch.manual_seed(0)
    shifted = random_shift(images, 2)
    centre = (shifted == 1.0).nonzero()[:, 2:]  # (row, col) of the centre pixel per image
    assert len(centre) == 400, "a pixel 2 from every border survives every shift"
    moves = {tuple(position) for position in (centre - 3).tolist()}
    assert moves == {(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)}
    corner = shifted == 2.0
    for image, (row, col) in zip(corner, centre.tolist(), strict=True):
        visible = row >= 3 and col >= 3  # the corner pixel moved in, not out
        assert bool(image.any()) == visible
    assert shifted.sum() < images.sum(), "pixels moved out are lost, none wrap around"


def test_no_shift_is_the_identity():
    images = torch.rand(3, 1, 4, 4)
    assert random_shift(images, 0) is images
