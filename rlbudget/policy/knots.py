"""Odd int8 tanh tables: stored as their upper half, or as 17 knots with linear
interpolation between them.

An odd table (:func:`odd_half`: a tanh whose input and output zero points are 0) is a
function of the inputs 0..127. When that function is the linear interpolation of its values
at the inputs 0, 8, …, 128 (the knots), it is stored and exported as those 17 bytes instead
of 128, and the C export computes it in integers:

    k = knots + (a >> 3);  y = k[0] + (((k[1] - k[0]) * (a & 7) + 4) >> 3)

(``a >> 3`` of a non-negative ``a``; ``>>`` of a negative value floors, as numpy's and
GCC's). :func:`knot_table` is that arithmetic in numpy, :func:`tanh_knots` finds the knots of
a table. On tanh, 8 inputs between knots stay within one step of the exact table (the
quantizer checks it before it uses knots).
"""

from __future__ import annotations

import numpy as np

from rlbudget.policy.kernels import Array


def odd_half(lut: Array) -> Array | None:
    """The upper half ``lut[128:]`` of a 256-entry int8 table that is odd, or None.

    Odd: ``lut[128 - k] == -lut[128 + k]`` for k in 1..127, ``lut[128] == 0`` and
    ``lut[0] == -lut[255]`` (a tanh table whose input and output zero points are 0). Such a
    table is stored and exported as its 128 entries for inputs 0..127:
    :func:`odd_table` rebuilds it.
    """
    half = np.asarray(lut[128:])
    return half if np.array_equal(odd_table(half), lut) else None


def odd_table(half: Array) -> Array:
    """The 256-entry table (inputs -128..127) of an odd function from its entries for
    inputs 0..127; input -128 reads as -127 (``-half[127]``)."""
    h = np.asarray(half).astype(np.int16)
    out: Array = np.concatenate([-h[127:128], -h[:0:-1], h]).astype(np.int8)
    return out


KNOT_SHIFT = 3
KNOT_STEP = 1 << KNOT_SHIFT
"""Inputs between two knots."""
KNOTS = 128 // KNOT_STEP + 1
"""Knots of a table: inputs 0, 8, …, 128 (the last only sets the slope over 120..127)."""


def interpolate(knots: Array) -> Array:
    """The values for the inputs 0..127 of the piecewise-linear function through ``knots``
    (:data:`KNOTS` values from 0 to 127), in the C export's integer arithmetic."""
    k = np.asarray(knots).astype(np.int32)
    a = np.arange(128)
    lo, hi = k[a // KNOT_STEP], k[a // KNOT_STEP + 1]
    out: Array = lo + (((hi - lo) * (a % KNOT_STEP) + KNOT_STEP // 2) >> KNOT_SHIFT)
    return out.astype(np.int8)


def knot_table(knots: Array) -> Array:
    """The 256-entry odd int8 table (inputs -128..127, -128 read as -127) of ``knots``.

    >>> knot_table(np.arange(0, 136, 8).clip(0, 127).astype(np.int8))[120:136].tolist()
    [-8, -7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7]
    """
    return odd_table(interpolate(knots))


def tanh_knots(lut: Array) -> Array | None:
    """The knots (:data:`KNOTS` int8 values from 0 to 127) of an odd 256-entry table that
    :func:`knot_table` rebuilds exactly, or None. The last knot, which only the inputs
    120..127 read, is the first value from 0 up that rebuilds them."""
    half = odd_half(lut)
    if half is None or half.min() < 0:
        return None
    knots = np.append(half[::KNOT_STEP], np.int8(0)).astype(np.int8)
    for last in range(128):
        knots[-1] = last
        if np.array_equal(knot_table(knots), lut):
            return knots
    return None
