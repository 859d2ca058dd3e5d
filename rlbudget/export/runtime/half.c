/* rlbudget C runtime: IEEE 754 half floats as uint16_t bit patterns (C99 has no half type).
 *
 * Exact conversions without libm, numpy's rounding (to nearest even). No parameters.
 */
#ifndef RLB_API
#define RLB_API
#include "runtime.h"
#endif

/* IEEE 754 half (bit pattern) -> float, exact (every half is a float) */
RLB_API float rlb_h2f(uint16_t h)
{
    union {
        uint32_t u;
        float f;
    } v;
    uint32_t exponent = ((uint32_t)h >> 10) & 0x1fu;
    uint32_t mantissa = (uint32_t)h & 0x3ffu;
    const uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    if (exponent == 0x1fu) {
        v.u = sign | 0x7f800000u | (mantissa << 13); /* inf, NaN */
    } else if (exponent != 0u) {
        v.u = sign | ((exponent + 112u) << 23) | (mantissa << 13);
    } else if (mantissa == 0u) {
        v.u = sign;
    } else { /* subnormal: shift the leading 1 up to the implicit bit */
        exponent = 113u;
        while (!(mantissa & 0x400u)) {
            mantissa <<= 1;
            --exponent;
        }
        v.u = sign | (exponent << 23) | ((mantissa & 0x3ffu) << 13);
    }
    return v.f;
}

/* float -> IEEE 754 half (bit pattern), round to nearest even (numpy's cast) */
RLB_API uint16_t rlb_f2h(float f)
{
    union {
        float f;
        uint32_t u;
    } v;
    uint32_t sign, exponent, mantissa, shift, half, rest, halfway;
    v.f = f;
    sign = (v.u >> 16) & 0x8000u;
    exponent = (v.u >> 23) & 0xffu;
    mantissa = v.u & 0x7fffffu;
    if (exponent == 0xffu) {
        return (uint16_t)(sign | 0x7c00u | (mantissa ? 0x200u : 0u)); /* inf, NaN */
    }
    if (exponent > 142u) {
        return (uint16_t)(sign | 0x7c00u); /* |f| >= 2^16: inf */
    }
    if (exponent >= 113u) { /* a normal half; a carry out of the mantissa is right too */
        half = ((exponent - 112u) << 10) | (mantissa >> 13);
        rest = mantissa & 0x1fffu;
        if (rest > 0x1000u || (rest == 0x1000u && (half & 1u))) {
            ++half;
        }
        return (uint16_t)(sign | half);
    }
    if (exponent < 102u) {
        return (uint16_t)sign; /* below half the smallest subnormal: zero */
    }
    mantissa |= 0x800000u; /* a subnormal half: units of 2^-24 */
    shift = 126u - exponent;
    half = mantissa >> shift;
    rest = mantissa & ((1u << shift) - 1u);
    halfway = 1u << (shift - 1u);
    if (rest > halfway || (rest == halfway && (half & 1u))) {
        ++half;
    }
    return (uint16_t)(sign | half);
}

/* f rounded to the nearest half, as a float (numpy: float32(float16(f))) */
RLB_API float rlb_round_half(float f)
{
    return rlb_h2f(rlb_f2h(f));
}
