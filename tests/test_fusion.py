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
