"""The DSen2-CR training sampling: random crop window, flip and 90-degree rotation (spec section 2).

The random numbers are drawn separately from their application so that a reader can read only
the drawn window from disk, and so that one draw is applied identically to every array of a
sample (S1, cloudy S2, target S2, cloud mask): the same crop and the same flip/rotation keep
them pixel-aligned, as in ``DataGenerator.get_batch`` of ``dataIO.py``.
"""

from __future__ import annotations

import numpy as np

#: Flip codes of :func:`draw_augmentation`: 0 = none, 1 = flip rows (the H axis, upside down),
#: 2 = flip columns (the W axis, left-right). Upstream ``np.flip(img, flip)`` on (C, H, W)
#: arrays uses the same numbers as axis indices.
FLIP_NONE, FLIP_ROWS, FLIP_COLS = 0, 1, 2


def draw_window(
    rng: np.random.Generator, size: int = 256, crop: int = 128
) -> tuple[int, int, int, int]:
    """Draw a random square crop window inside a ``size x size`` patch.

    Row and column offsets are drawn independently and uniformly from ``0 .. size - crop - 1``
    (``rng.integers(0, size - crop)``, high exclusive). For the paper's 256/128 this is exactly
    upstream's ``np.random.randint(0, crop_size)`` = 0..127 (``dataIO.py``
    ``on_epoch_end``): the flush bottom/right offset 128 is never drawn, and we keep that
    rather than "fix" it so that sampling matches the paper. When ``crop == size`` the only
    window is the whole patch (offset 0).

    Args:
        rng: the generator to draw from (two draws when ``crop < size``, none otherwise).
        size: side of the patch, pixels.
        crop: side of the window, pixels, ``1 <= crop <= size``.

    Returns:
        ``(row, col, crop, crop)`` in pixels.
    """
    if not 1 <= crop <= size:
        raise ValueError(f"crop size {crop} must be between 1 and the patch size {size}")
    if crop == size:
        return 0, 0, crop, crop
    row = int(rng.integers(0, size - crop))
    col = int(rng.integers(0, size - crop))
    return row, col, crop, crop


def draw_augmentation(rng: np.random.Generator) -> tuple[int, int]:
    """Draw the paper's augmentation: a flip code, then a number of 90-degree rotations.

    Returns:
        ``(flip, k)``: flip uniform in {0 none, 1 flip rows (H), 2 flip cols (W)}, then k uniform
        in {0, 1, 2, 3} (upstream ``randint(0, 3)`` and ``randint(0, 4)``).
    """
    flip = int(rng.integers(0, 3))
    k = int(rng.integers(0, 4))
    return flip, k


def _check_aug(arr: np.ndarray, flip: int, k: int) -> None:
    if arr.ndim < 2:
        raise ValueError(f"array must have at least 2 dims (..., H, W), got shape {arr.shape}")
    if flip not in (FLIP_NONE, FLIP_ROWS, FLIP_COLS):
        raise ValueError(f"flip must be 0 (none), 1 (rows) or 2 (cols), got {flip}")
    if k not in (0, 1, 2, 3):
        raise ValueError(f"k (number of 90-degree rotations) must be 0..3, got {k}")


def apply_augmentation(arr: np.ndarray, flip: int, k: int) -> np.ndarray:
    """Flip then rotate the last two axes of an array, as the DSen2-CR data generator does.

    ``np.rot90(np.flip(arr, H or W), k, axes=(-2, -1))``: for (C, H, W) arrays this is upstream's
    ``np.flip(img, flip)`` followed by ``np.rot90(img, k, (1, 2))``. Works on any leading dims,
    so masks (H, W) and stacks (C, H, W) get the identical transform.

    Args:
        arr: ``(..., H, W)`` array of any dtype.
        flip: 0 none, 1 flip rows (H axis), 2 flip columns (W axis).
        k: counter-clockwise 90-degree rotations, 0..3 (odd k swaps H and W).

    Returns:
        A C-contiguous copy (never a view of ``arr``: safe to hand to torch or to write to).
    """
    _check_aug(arr, flip, k)
    out = arr
    if flip == FLIP_ROWS:
        out = np.flip(out, axis=-2)
    elif flip == FLIP_COLS:
        out = np.flip(out, axis=-1)
    if k:
        out = np.rot90(out, k, axes=(-2, -1))
    return np.array(out, order="C", copy=True)


def invert_augmentation(arr: np.ndarray, flip: int, k: int) -> np.ndarray:
    """Undo :func:`apply_augmentation` (rotate back by ``-k``, then flip again).

    Useful to bring a prediction made on an augmented sample back to the file's orientation.
    Returns a C-contiguous copy.
    """
    _check_aug(arr, flip, k)
    out = np.rot90(arr, -k, axes=(-2, -1)) if k else arr
    if flip == FLIP_ROWS:
        out = np.flip(out, axis=-2)
    elif flip == FLIP_COLS:
        out = np.flip(out, axis=-1)
    return np.array(out, order="C", copy=True)
