import pytest
import torch

from lenet.augment import TTA_SHIFTS, distort, shifted


def _digits(n=64):
    images = torch.zeros(n, 1, 28, 28)
    images[:, :, 8:20, 12:16] = 1.0  # a bar in the middle, like a "1"
    return images


# Zoom within 10% changes the area by about 20% at most; elastic stretching of a thin bar adds more.
@pytest.mark.parametrize("kind, ink_bounds", [("affine", (0.7, 1.3)), ("elastic", (0.4, 2.0))])
def test_distortions_move_pixels_keep_range_and_ink_and_differ_per_image(kind, ink_bounds):
    images = _digits()
    torch.manual_seed(0)
    out = distort(images, kind)
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 1
    assert not torch.allclose(out, images)
    ink_ratio = out.sum((1, 2, 3)) / images.sum((1, 2, 3))
    assert ((ink_ratio > ink_bounds[0]) & (ink_ratio < ink_bounds[1])).all()
    assert (out[0] - out[1]).abs().sum() > 1  # each image gets its own distortion


def test_distortions_follow_the_torch_seed():
    torch.manual_seed(3)
    first = distort(_digits(8), "elastic")
    torch.manual_seed(3)
    assert torch.equal(first, distort(_digits(8), "elastic"))


def test_elastic_adds_to_the_affine_map():
    torch.manual_seed(5)
    affine = distort(_digits(8), "affine")
    torch.manual_seed(5)  # same affine draws first, then the displacement field
    assert not torch.allclose(affine, distort(_digits(8), "elastic"))


def test_none_is_the_identity_and_unknown_kinds_are_refused():
    images = _digits(2)
    assert distort(images, "none") is images
    with pytest.raises(ValueError, match="augmentation"):
        distort(images, "mixup")


def test_shifts_move_content_by_one_pixel_with_zeros_shifted_in():
    image = torch.zeros(1, 1, 4, 4)
    image[0, 0, 0, 0] = 1.0
    image[0, 0, 3, 3] = 2.0
    down = shifted(image, 1, 0)
    assert down[0, 0, 1, 0] == 1.0 and down[0, 0, 0].sum() == 0 and down.sum() == 1.0  # the 2 fell off
    left = shifted(image, 0, -1)
    assert left[0, 0, 3, 2] == 2.0 and left.sum() == 2.0
    assert len(TTA_SHIFTS) == 5 and (0, 0) in TTA_SHIFTS
