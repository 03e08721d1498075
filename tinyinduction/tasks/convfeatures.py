"""A fixed, seeded random convolutional network that turns images into feature vectors.

Why a random network can stand in for the paper's frozen ResNet18: the ResNet was
trained on ImageNet and never saw Omniglot, so on character images it acts as a bank
of generic local edge/stroke detectors followed by rectification and pooling. Much of
what such features are good for comes from that architecture, not from the learned
weights: convolutions with random filters, ReLU and pooling already give features
that are non-negative, tolerant to small shifts, and close for images that share
strokes (Jarrett et al. 2009, "What is the best multi-stage architecture for object
recognition?"; Saxe et al. 2011, "On random weights and unsupervised feature
learning"). Those are the properties the few-shot task depends on: drawings of one
character land close together, different characters farther apart, all in the
positive orthant with a large shared component.

Network (weights from ``np.random.default_rng([seed, 2])``, He-scaled Gaussians, the
first layer's filters made zero-mean so they respond to strokes, not to ink amount):

    image [S, S] -> conv 5x5, 32 ch, ReLU, 2x2 max pool     -> [S/2, S/2, 32]
                 -> conv 3x3, 64 ch, ReLU, 2x2 max pool     -> [S/4, S/4, 64]
                 -> conv 3x3, ceil(F/16) ch, ReLU           -> [S/4, S/4, F/16]
                 -> mean over a 4 x 4 grid of cells          -> F features

The last step is a CNN's average pooling kept on a coarse grid rather than over the
whole image: a single global mean made every glyph's features nearly parallel
(cosine 0.99 between characters), the 4 x 4 grid keeps where strokes are (cosine
~0.85 between characters, ~0.9 between drawings of one; measured on 150 classes).

Letters: M images, S image side, H W spatial size of a layer, C channels, K = C k k
inputs of one output pixel, F output features.
"""
from __future__ import annotations

import numpy as np

__all__ = ["random_conv_features", "CHANNELS"]

CHANNELS = (32, 64)          # channels of the first two layers
KERNELS = (5, 3, 3)          # kernel sizes of the three layers
GRID = 4                     # final average pooling onto GRID x GRID cells


def _conv_relu(x: np.ndarray, weights: np.ndarray, kernel: int) -> np.ndarray:
    """x [M, H, W, C], weights [K = C k k, C_out] -> ReLU(conv) [M, H, W, C_out], 'same'."""
    pad = kernel // 2
    padded = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kernel, kernel), axis=(1, 2))
    m, h, w = windows.shape[:3]                                # windows [M, H, W, C, k, k]
    columns = windows.reshape(m * h * w, -1)                   # [M H W, K] (a copy: im2col)
    out = columns @ weights                                    # [M H W, C_out]
    np.maximum(out, 0, out=out)
    return out.reshape(m, h, w, -1)


def _max_pool2(x: np.ndarray) -> np.ndarray:
    """[M, H, W, C] -> [M, H//2, W//2, C] (odd edges dropped)."""
    m, h, w, c = x.shape
    x = x[:, :h - h % 2, :w - w % 2]
    return x.reshape(m, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _cells(n: int) -> list:
    """GRID slices covering range(n), as equal as possible (overlapping when n % GRID)."""
    width = max(1, -(-n // GRID))
    starts = np.round(np.linspace(0, n - width, GRID)).astype(int)
    return [slice(int(s), int(s) + width) for s in starts]


def network_weights(dim: int, seed: int, in_channels: int = 1) -> list:
    """The three layers' weight matrices [K, C_out], fixed by `seed`."""
    rng = np.random.default_rng([seed, 2])
    widths = (in_channels,) + CHANNELS + (-(-dim // GRID ** 2),)
    weights = []
    for layer, kernel in enumerate(KERNELS):
        fan_in = widths[layer] * kernel * kernel
        w = rng.standard_normal((fan_in, widths[layer + 1])) * np.sqrt(2.0 / fan_in)
        if layer == 0:
            w -= w.mean(axis=0, keepdims=True)                 # zero-mean stroke detectors
        weights.append(w.astype(np.float32))
    return weights


def random_conv_features(images: np.ndarray, dim: int = 512, seed: int = 0,
                         chunk: int = 256) -> np.ndarray:
    """images [M, S, S] (S >= 8) -> non-negative float32 features [M, dim]."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 3 or images.shape[1] < 8 or images.shape[2] < 8:
        raise ValueError(f"random_conv_features images: shape {images.shape}; must be "
                         "(images, side, side) with side >= 8")
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or dim < 1:
        raise ValueError(f"random_conv_features dim = {dim!r}: must be an integer >= 1")
    weights = network_weights(int(dim), seed)
    out = np.empty((len(images), dim), np.float32)
    for start in range(0, len(images), chunk):
        x = images[start:start + chunk, :, :, None]                         # [M, S, S, 1]
        x = _max_pool2(_conv_relu(x, weights[0], KERNELS[0]))               # [M, S/2, S/2, 32]
        x = _max_pool2(_conv_relu(x, weights[1], KERNELS[1]))               # [M, S/4, S/4, 64]
        x = _conv_relu(x, weights[2], KERNELS[2])                           # [M, S/4, S/4, F/16]
        rows, cols = _cells(x.shape[1]), _cells(x.shape[2])
        cells = [x[:, r, c].mean(axis=(1, 2)) for r in rows for c in cols]  # 16 x [M, F/16]
        pooled = np.stack(cells, axis=-1).reshape(len(x), -1)              # [M, 16 ceil(F/16)]
        out[start:start + chunk] = pooled[:, :dim]
    return out
