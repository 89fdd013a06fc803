import math

import pytest
import torch

from lenet.layers import AvgPool2d, Conv2d, MaxPool2d, init_weight, output_size, same_padding


def grid(h, w):
    return torch.arange(h * w, dtype=torch.float32).reshape(1, 1, h, w)


@pytest.mark.parametrize("size, k, s, expected", [
    (28, 3, 2, (0, 1)),   # odd total: the extra row goes after (bottom/right)
    (28, 2, 2, (0, 0)),
    (28, 5, 1, (2, 2)),
    (4, 3, 2, (0, 1)),
    (3, 2, 1, (0, 1)),
    (7, 3, 3, (1, 1)),
])
def test_same_padding_follows_tensorflow(size, k, s, expected):
    assert same_padding(size, k, s) == expected


def test_output_sizes_match_the_formulas():
    assert output_size(28, 5, 1, "SAME") == 28 and output_size(32, 5, 1, "VALID") == 28
    assert output_size(28, 3, 2, "SAME") == 14 and output_size(28, 3, 2, "VALID") == 13


def test_max_pool_3x3_stride_2_same_on_28_gives_14_with_bottom_right_padding():
    out = MaxPool2d(3, 2, "SAME")(grid(28, 28))
    assert out.shape == (1, 1, 14, 14)
    # Windows start at rows/cols 0, 2, ..., 26 (no top/left padding): the last covers 26..27 + pad.
    assert out[0, 0, 0, 0].item() == 2 * 28 + 2
    assert out[0, 0, -1, -1].item() == 27 * 28 + 27


def test_max_pool_same_hand_computed_4x4():
    # 4x4 grid 0..15, 3x3 window, stride 2: windows rows {0-2, 2-3+pad}, cols likewise.
    out = MaxPool2d(3, 2, "SAME")(grid(4, 4))
    assert out[0, 0].tolist() == [[10.0, 11.0], [14.0, 15.0]]


def test_max_pool_ignores_padding_even_for_negative_inputs():
    out = MaxPool2d(3, 2, "SAME")(-1 - grid(4, 4))
    assert out[0, 0].tolist() == [[-1.0, -3.0], [-9.0, -11.0]]


def test_avg_pool_same_does_not_count_padded_cells():
    out = AvgPool2d(3, 2, "SAME")(grid(4, 4))
    # mean(0,1,2,4,5,6,8,9,10)=5; mean(2,3,6,7,10,11)=6.5; mean(8,9,10,12,13,14)=11; mean(10,11,14,15)=12.5
    assert out[0, 0].tolist() == [[5.0, 6.5], [11.0, 12.5]]


def test_avg_pool_valid_and_symmetric_same():
    assert AvgPool2d(2, 2, "VALID")(grid(2, 2)).item() == 1.5
    assert AvgPool2d(2, 2, "SAME")(grid(4, 4))[0, 0].tolist() == [[2.5, 4.5], [10.5, 12.5]]


def test_conv_same_with_even_kernel_pads_after_only():
    conv = Conv2d(1, 1, 2, padding="SAME")
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.zero_()
    # x = [[0,1,2],[3,4,5],[6,7,8]]; each output sums x[i:i+2, j:j+2] with zeros beyond the edge.
    assert conv(grid(3, 3))[0, 0].tolist() == [[8, 12, 7], [20, 24, 13], [13, 15, 8]]


def test_conv_same_strided_odd_pad():
    conv = Conv2d(1, 1, 3, stride=2, padding="SAME")
    with torch.no_grad():
        conv.weight.fill_(1.0)
        conv.bias.fill_(0.5)
    out = conv(grid(4, 4))
    # Same windows as the 4x4 max-pool test: sums 45, 39, 66, 50, plus the bias.
    assert out[0, 0].tolist() == [[45.5, 39.5], [66.5, 50.5]]


def test_conv_valid_and_symmetric_same_shapes():
    assert Conv2d(1, 6, 5, padding="VALID")(torch.zeros(2, 1, 32, 32)).shape == (2, 6, 28, 28)
    assert Conv2d(3, 16, 5, padding="SAME")(torch.zeros(2, 3, 28, 28)).shape == (2, 16, 28, 28)
    with pytest.raises(ValueError, match="padding"):
        Conv2d(1, 1, 3, padding="same")


def test_truncated_normal_redraws_beyond_two_sigma():
    torch.manual_seed(0)
    w = torch.empty(200_000)
    init_weight(w, "truncated_normal", stddev=0.1)
    assert w.abs().max() <= 0.2
    # A normal truncated at +-2 sigma has standard deviation 0.8796 sigma.
    assert math.isclose(w.std().item(), 0.08796, rel_tol=0.01)


def test_glorot_uniform_bound_counts_kernel_area():
    w = torch.empty(64, 32, 5, 5)
    init_weight(w, "glorot_uniform")
    bound = math.sqrt(6 / (32 * 25 + 64 * 25))
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound


def test_standard_normal_and_unknown_initializer():
    torch.manual_seed(0)
    w = torch.empty(100_000)
    init_weight(w, "standard_normal")
    assert math.isclose(w.std().item(), 1.0, rel_tol=0.02)
    with pytest.raises(ValueError, match="initializer"):
        init_weight(w, "he")
