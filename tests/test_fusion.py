"""Tests for course_utils.fusion: BN folding and horizontal conv merging."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import course_utils as cu


def _conv_bn(seed: int = 0) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    torch.manual_seed(seed)
    conv = nn.Conv2d(3, 8, 3, padding=1)
    bn = nn.BatchNorm2d(8)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-1, 1)
    return conv.eval(), bn.eval()


def test_fuse_conv_bn_matches_eval_forward() -> None:
    conv, bn = _conv_bn()
    fused = cu.fuse_conv_bn(conv, bn)
    x = torch.randn(2, 3, 10, 10)
    with torch.no_grad():
        expected = torch.relu(bn(conv(x)))
        got = torch.relu(fused(x))
    assert torch.allclose(expected, got, atol=1e-5)
    assert fused.bias is not None and not fused.training


def test_fuse_conv_without_bias_and_non_affine_bn() -> None:
    torch.manual_seed(1)
    conv = nn.Conv2d(4, 6, 1, bias=False).eval()
    bn = nn.BatchNorm2d(6, affine=False).eval()
    bn.running_var.fill_(4.0)
    x = torch.randn(1, 4, 5, 5)
    with torch.no_grad():
        assert torch.allclose(bn(conv(x)), cu.fuse_conv_bn(conv, bn)(x), atol=1e-5)


def test_fold_batchnorm_numpy_formula() -> None:
    weight = np.ones((2, 1, 1, 1))
    w, b = cu.fold_batchnorm(weight, None, mean=[1.0, 0.0], var=[3.0, 0.0],
                             gamma=[2.0, 1.0], beta=[0.5, 0.0], eps=1.0)
    np.testing.assert_allclose(w.ravel(), [1.0, 1.0])
    np.testing.assert_allclose(b, [-1.0 + 0.5, 0.0])
    assert w.dtype == np.float32


def test_fold_batchnorm_bad_input() -> None:
    with pytest.raises(cu.CourseError, match="output channels"):
        cu.fold_batchnorm(np.ones((3, 2, 1, 1)), None, [0, 0], [1, 1], [1, 1], [0, 0])
    with pytest.raises(cu.CourseError, match="variance"):
        cu.fold_batchnorm(np.ones((1, 1)), None, [0], [-2.0], [1], [0], eps=1e-5)
    with pytest.raises(cu.CourseError, match="ndim"):
        cu.fold_batchnorm(np.ones(3), None, [0], [1], [1], [0])
    with pytest.raises(cu.CourseError, match="NaN"):
        cu.fold_batchnorm(np.full((1, 1), np.nan), None, [0], [1], [1], [0])


def test_fuse_conv_bn_bad_input() -> None:
    conv, _ = _conv_bn()
    with pytest.raises(cu.CourseError, match="cannot be fused"):
        cu.fuse_conv_bn(conv, nn.BatchNorm2d(5))
    with pytest.raises(cu.CourseError, match="needs an nn.Conv2d"):
        cu.fuse_conv_bn(nn.Linear(2, 2), nn.BatchNorm2d(2))
    with pytest.raises(cu.CourseError, match="running statistics"):
        cu.fuse_conv_bn(conv, nn.BatchNorm2d(8, track_running_stats=False))


def test_merge_parallel_convs_equal_outputs() -> None:
    torch.manual_seed(2)
    convs = [nn.Conv2d(16, c, 1) for c in (8, 4, 12)]
    convs[1] = nn.Conv2d(16, 4, 1, bias=False)
    merged = cu.merge_parallel_convs(convs)
    x = torch.randn(2, 16, 7, 7)
    with torch.no_grad():
        outputs = merged(x)
        for conv, out in zip(convs, outputs, strict=True):
            assert torch.allclose(conv(x), out, atol=1e-5)
    assert merged.split_sizes == [8, 4, 12]
    assert merged.conv.out_channels == 24


def test_merge_conv_weights_numpy() -> None:
    w, b, sizes = cu.merge_conv_weights([np.ones((2, 3, 1, 1)), np.zeros((1, 3, 1, 1))],
                                        [np.array([1.0, 2.0]), None])
    assert w.shape == (3, 3, 1, 1) and sizes == [2, 1]
    np.testing.assert_allclose(b, [1.0, 2.0, 0.0])


def test_merge_bad_input() -> None:
    with pytest.raises(cu.CourseError, match="at least two"):
        cu.merge_conv_weights([np.ones((2, 3, 1, 1))])
    with pytest.raises(cu.CourseError, match="share"):
        cu.merge_conv_weights([np.ones((2, 3, 1, 1)), np.ones((2, 4, 1, 1))])
    with pytest.raises(cu.CourseError, match="biases"):
        cu.merge_conv_weights([np.ones((2, 3, 1, 1))] * 2, [None])
    with pytest.raises(cu.CourseError, match=r"biases\[0\]"):
        cu.merge_conv_weights([np.ones((2, 3, 1, 1))] * 2, [np.ones(3), None])
    with pytest.raises(cu.CourseError, match="kernel_size"):
        cu.merge_parallel_convs([nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 3)])
    with pytest.raises(cu.CourseError, match="groups=1"):
        cu.merge_parallel_convs([nn.Conv2d(4, 4, 1, groups=2), nn.Conv2d(4, 4, 1, groups=2)])
    with pytest.raises(cu.CourseError, match="at least two"):
        cu.merge_parallel_convs([nn.Conv2d(4, 4, 1)])


# --- known answers and the planted bugs of issue 17 -------------------------------------------

def test_fold_batchnorm_known_answer_with_bias_and_eps() -> None:
    # s = gamma / sqrt(var + eps): channel 0: 3 / sqrt(8 + 1) = 1; channel 1: 2 / sqrt(3 + 1) = 1
    weight = np.array([[[[2.0]]], [[[4.0]]]])
    w, b = cu.fold_batchnorm(weight, [1.0, -1.0], mean=[0.5, 1.0], var=[8.0, 3.0],
                             gamma=[3.0, 2.0], beta=[0.25, 10.0], eps=1.0)
    np.testing.assert_allclose(w.ravel(), [2.0, 4.0])  # scaled by s = 1
    np.testing.assert_allclose(b, [(1.0 - 0.5) * 1 + 0.25, (-1.0 - 1.0) * 1 + 10.0])
    w, b = cu.fold_batchnorm(weight, None, mean=[0.0, 0.0], var=[3.0, 15.0],
                             gamma=[1.0, 1.0], beta=[0.0, 0.0], eps=1.0)
    np.testing.assert_allclose(w.ravel(), [2.0 / 2, 4.0 / 4])  # s = 1/2 and 1/4


def test_fold_batchnorm_agrees_with_torch_fuse_conv_bn_eval() -> None:
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    conv, bn = _conv_bn(seed=4)
    reference = fuse_conv_bn_eval(conv, bn)
    w, b = cu.fold_batchnorm(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                             bn.weight, bn.bias, bn.eps)
    np.testing.assert_allclose(w, reference.weight.detach().numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b, reference.bias.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_fold_batchnorm_into_a_linear_layer() -> None:
    torch.manual_seed(5)
    linear, bn = nn.Linear(6, 4).eval(), nn.BatchNorm1d(4).eval()
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    w, b = cu.fold_batchnorm(linear.weight, linear.bias, bn.running_mean, bn.running_var,
                             bn.weight, bn.bias, bn.eps)
    x = torch.randn(3, 6)
    with torch.no_grad():
        expected = bn(linear(x)).numpy()
    np.testing.assert_allclose(x.numpy() @ w.T + b, expected, rtol=1e-5, atol=1e-5)


def test_fuse_conv_bn_keeps_the_conv_geometry() -> None:
    torch.manual_seed(6)
    conv = nn.Conv2d(8, 8, 3, stride=2, padding=2, dilation=2, groups=4).eval()
    bn = nn.BatchNorm2d(8).eval()
    with torch.no_grad():
        bn.running_var.uniform_(0.5, 2)
    fused = cu.fuse_conv_bn(conv, bn)
    for attribute in ("stride", "padding", "dilation", "groups", "kernel_size"):
        assert getattr(fused, attribute) == getattr(conv, attribute), attribute
    x = torch.randn(1, 8, 11, 11)
    with torch.no_grad():
        assert torch.allclose(bn(conv(x)), fused(x), atol=1e-5)


@pytest.mark.parametrize(("attribute", "change"), [
    ("stride", {"stride": 2}), ("padding", {"padding": 0}), ("dilation", {"dilation": 2}),
    ("in_channels", {"in_channels": 5}), ("padding_mode", {"padding_mode": "reflect"}),
])
def test_merge_refuses_convs_that_read_the_input_differently(attribute, change) -> None:
    """Planted bug (issue 17): with stride left out of the check, a stride-2 conv was merged
    into a stride-1 one and its output silently had the wrong size."""
    base = {"in_channels": 4, "out_channels": 4, "kernel_size": 3, "padding": 1}
    with pytest.raises(cu.CourseError, match=rf"convs\[1\]\.{attribute} = "):
        cu.merge_parallel_convs([nn.Conv2d(**base), nn.Conv2d(**(base | change))])


def test_merge_keeps_a_shared_stride() -> None:
    torch.manual_seed(7)
    convs = [nn.Conv2d(4, c, 3, stride=2, padding=1).eval() for c in (3, 5)]
    merged = cu.merge_parallel_convs(convs)
    x = torch.randn(1, 4, 9, 9)
    with torch.no_grad():
        for conv, out in zip(convs, merged(x), strict=True):
            assert out.shape == (1, conv.out_channels, 5, 5)
            assert torch.allclose(conv(x), out, atol=1e-6)


def test_merge_conv_weights_known_answer() -> None:
    w, b, sizes = cu.merge_conv_weights([np.full((1, 2), 1.0), np.full((2, 2), 2.0)],
                                        [np.array([5.0]), np.array([6.0, 7.0])])
    np.testing.assert_array_equal(w, [[1, 1], [2, 2], [2, 2]])
    np.testing.assert_array_equal(b, [5, 6, 7])
    assert sizes == [1, 2]


def test_helpers_refuse_values_that_are_not_numbers() -> None:
    with pytest.raises(cu.CourseError, match="array of numbers"):
        cu.fold_batchnorm("weights", None, [0], [1], [1], [0])
    with pytest.raises(cu.CourseError, match="empty"):
        cu.fold_batchnorm(np.ones((0, 3)), None, [], [], [], [])
    with pytest.raises(cu.CourseError, match="NaN"):
        cu.fold_batchnorm(np.ones((1, 1)), None, [0], [np.nan], [1], [0])
    with pytest.raises(cu.CourseError, match="array of numbers"):
        cu.merge_conv_weights([np.ones((2, 3)), {"w": 1}])
    with pytest.raises(cu.CourseError, match="eps"):
        cu.fold_batchnorm(np.ones((1, 1)), None, [0], [1], [1], [0], eps=-1.0)
