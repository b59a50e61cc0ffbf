"""Layer fusion (层融合) math: fold BatchNorm into a convolution, merge parallel convolutions.

Vertical fusion: in inference BatchNorm is a fixed per-channel affine map, so it folds into
the preceding convolution's weights and bias (`fold_batchnorm` on arrays, `fuse_conv_bn` on
torch modules). Horizontal fusion: convolutions that read the same input with the same
geometry become one wider convolution whose output is split (`merge_conv_weights`,
`merge_parallel_convs`). TensorRT does both at build time; here the learner does them by
hand and checks that the numbers do not change.

Why helpers when PyTorch has `torch.nn.utils.fusion.fuse_conv_bn_eval` (notebook 01 shows it
and checks that both agree)? `fold_batchnorm` works on plain arrays, so the same two lines fold
an ONNX graph's initializers or a Linear + BatchNorm1d pair, and every input is checked with
a clear message (shapes that do not belong together, a negative variance, NaN); PyTorch has
no horizontal-fusion helper at all.
Taught in: 01_tensorrt_in_context.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .errors import CourseError

__all__ = [
    "fold_batchnorm", "fuse_conv_bn", "merge_conv_weights", "merge_parallel_convs",
    "MergedConv",
]


def _as_float_array(name: str, value: object) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise CourseError(f"{name} must be an array of numbers, got {type(value).__name__} "
                          f"{str(value)[:40]!r}.") from None
    if array.size == 0:
        raise CourseError(f"{name} is empty: there is nothing to fold or merge.")
    if not np.all(np.isfinite(array)):
        raise CourseError(f"{name} contains NaN or infinity; check the model's parameters.")
    return array


def fold_batchnorm(
    weight: np.ndarray, bias: np.ndarray | None, mean: np.ndarray, var: np.ndarray,
    gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray]:
    """Fold BN(y) = gamma * (y - mean) / sqrt(var + eps) + beta into conv weight and bias.

    With s = gamma / sqrt(var + eps) (one number per output channel):
    W' = W * s (scaled along the output-channel axis 0), b' = (b - mean) * s + beta.
    Works for any weight whose axis 0 is the output channel (Conv1d/2d/3d, Linear), as numpy
    arrays or torch tensors, which is what `torch.nn.utils.fusion.fuse_conv_bn_weights` does
    for torch tensors only. Returns float32 arrays. Taught in: 01_tensorrt_in_context.
    """
    w = _as_float_array("weight", weight)
    if w.ndim < 2:
        raise CourseError(f"weight must have an output-channel axis and more (ndim >= 2), "
                          f"got shape {w.shape}.")
    channels = w.shape[0]
    b = np.zeros(channels) if bias is None else _as_float_array("bias", bias)
    stats = {"bias": b, "mean": mean, "var": var, "gamma": gamma, "beta": beta}
    stats = {k: _as_float_array(k, v) for k, v in stats.items()}
    for name, array in stats.items():
        if array.shape != (channels,):
            raise CourseError(
                f"{name} has shape {array.shape} but the weight has {channels} output "
                f"channels: BN must follow this conv (expected ({channels},)).")
    if not eps >= 0:
        raise CourseError(f"eps must be >= 0, got {eps!r}.")
    if np.any(stats["var"] + eps <= 0):
        raise CourseError("var + eps must be > 0 for every channel "
                          "(a variance cannot be negative).")
    scale = stats["gamma"] / np.sqrt(stats["var"] + eps)
    folded_w = w * scale.reshape((-1,) + (1,) * (w.ndim - 1))
    folded_b = (stats["bias"] - stats["mean"]) * scale + stats["beta"]
    return folded_w.astype(np.float32), folded_b.astype(np.float32)


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new Conv2d equal to `bn(conv(x))` in eval mode (the inputs are left untouched).

    Uses BN's running statistics, as inference does, like `torch.nn.utils.fusion.fuse_conv_bn_eval`;
    unlike it, raises a `CourseError` that says why when the modules do not fit together
    (wrong types, channel counts, BN without running statistics). Taught in: 01_tensorrt_in_context.
    """
    if not isinstance(conv, nn.Conv2d) or not isinstance(bn, nn.modules.batchnorm._BatchNorm):
        raise CourseError(f"fuse_conv_bn(conv, bn) needs an nn.Conv2d and a BatchNorm module, "
                          f"got {type(conv).__name__} and {type(bn).__name__}.")
    if bn.num_features != conv.out_channels:
        raise CourseError(f"BatchNorm has {bn.num_features} features but the conv has "
                          f"{conv.out_channels} output channels; they cannot be fused.")
    if bn.running_mean is None or bn.running_var is None:
        raise CourseError("This BatchNorm has no running statistics (track_running_stats=False); "
                          "only BN with fixed inference statistics folds into a conv.")
    gamma = bn.weight if bn.affine else torch.ones(bn.num_features)
    beta = bn.bias if bn.affine else torch.zeros(bn.num_features)
    weight, bias = fold_batchnorm(conv.weight, conv.bias, bn.running_mean, bn.running_var,
                                  gamma, beta, bn.eps)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride,
                      conv.padding, conv.dilation, conv.groups, bias=True,
                      padding_mode=conv.padding_mode)
    with torch.no_grad():
        fused.weight.copy_(torch.from_numpy(weight))
        fused.bias.copy_(torch.from_numpy(bias))
    return fused.to(conv.weight.device).eval()


def merge_conv_weights(
    weights: Sequence[np.ndarray], biases: Sequence[np.ndarray | None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Stack the weights (and biases) of convolutions that read the same input.

    Each weight is (out_i, in, kh, kw) with identical (in, kh, kw); the result is one
    (sum out_i, in, kh, kw) weight, its bias (zeros where a conv had none) and the split
    sizes [out_0, out_1, ...] that recover each original output.
    Taught in: 01_tensorrt_in_context.
    """
    arrays = [_as_float_array(f"weights[{i}]", w) for i, w in enumerate(weights)]
    if len(arrays) < 2:
        raise CourseError("Horizontal fusion needs at least two convolutions to merge.")
    tail = arrays[0].shape[1:]
    for i, array in enumerate(arrays):
        if array.ndim < 2 or array.shape[1:] != tail:
            raise CourseError(
                f"weights[{i}] has shape {array.shape}; every weight must share "
                f"(in_channels, kernel...) = {tail} to read the same input the same way.")
    biases = list(biases) if biases is not None else [None] * len(arrays)
    if len(biases) != len(arrays):
        raise CourseError(f"got {len(biases)} biases for {len(arrays)} weights.")
    bias_arrays = []
    for i, (w, b) in enumerate(zip(arrays, biases, strict=True)):
        b = np.zeros(w.shape[0]) if b is None else _as_float_array(f"biases[{i}]", b)
        if b.shape != (w.shape[0],):
            raise CourseError(f"biases[{i}] has shape {b.shape}, expected ({w.shape[0]},).")
        bias_arrays.append(b)
    merged_w = np.concatenate(arrays).astype(np.float32)
    merged_b = np.concatenate(bias_arrays).astype(np.float32)
    return merged_w, merged_b, [w.shape[0] for w in arrays]


class MergedConv(nn.Module):
    """One wide convolution followed by a split: returns the tuple the parallel convs gave."""

    def __init__(self, conv: nn.Conv2d, split_sizes: Sequence[int]) -> None:
        super().__init__()
        self.conv = conv
        self.split_sizes = list(split_sizes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return torch.split(self.conv(x), self.split_sizes, dim=1)


def merge_parallel_convs(convs: Sequence[nn.Conv2d]) -> MergedConv:
    """Merge Conv2d modules that read the same input into one conv + split (horizontal fusion).

    They must agree on in_channels, kernel size, stride, padding, dilation and groups=1;
    `MergedConv(x)` then returns (conv_0(x), conv_1(x), ...).
    Taught in: 01_tensorrt_in_context.
    """
    convs = list(convs)
    if len(convs) < 2 or not all(isinstance(c, nn.Conv2d) for c in convs):
        raise CourseError("merge_parallel_convs needs a list of at least two nn.Conv2d modules.")
    first = convs[0]
    geometry = ("in_channels", "kernel_size", "stride", "padding", "dilation", "groups",
                "padding_mode")
    for i, conv in enumerate(convs[1:], start=1):
        for attribute in geometry:
            if getattr(conv, attribute) != getattr(first, attribute):
                raise CourseError(
                    f"convs[{i}].{attribute} = {getattr(conv, attribute)} but convs[0] has "
                    f"{getattr(first, attribute)}: only convs that read the same input the same "
                    "way can be merged."
                )
    if first.groups != 1:
        raise CourseError("merge_parallel_convs supports groups=1 only (grouped convs "
                          "would need their groups interleaved).")
    weight, bias, sizes = merge_conv_weights([c.weight for c in convs], [c.bias for c in convs])
    merged = nn.Conv2d(first.in_channels, sum(sizes), first.kernel_size, first.stride,
                       first.padding, first.dilation, 1, bias=True, padding_mode=first.padding_mode)
    with torch.no_grad():
        merged.weight.copy_(torch.from_numpy(weight))
        merged.bias.copy_(torch.from_numpy(bias))
    return MergedConv(merged.to(first.weight.device), sizes).eval()
