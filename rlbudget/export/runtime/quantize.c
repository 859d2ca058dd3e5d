/* rlbudget C runtime: float32 -> int8 quantization of the input, no libm.
 *
 * Parameters: RLB_HALF_SCALE 1 (the caller passes scale / 2, exact in float32: fewer float
 * operations) or 0 (the caller passes the scale, for a scale below 2^-125).
 */
#ifndef RLB_API
#define RLB_API
#include "runtime.h"
#endif
#ifndef RLB_HALF_SCALE
#define RLB_HALF_SCALE 1
#endif

#if RLB_HALF_SCALE
/* float32 -> int8: clamp(round(v / scale) + zero_point), half away from zero (no libm).
   half_scale is scale / 2 (exact), so s = v / half_scale is 2 v / scale exactly, and
   round(v / scale) = (trunc(s) + sign(s)) / 2 with C's truncating division; s saturates
   where the result does (-128, 127), so no clamp is left after the rounding */
RLB_API int8_t rlb_quantize(float v, float half_scale, int32_t zero_point)
{
    float s = v / half_scale;
    const float lo = (float)(2 * (-128 - zero_point)), hi = (float)(2 * (127 - zero_point));
    int32_t r;
    if (!(s >= lo)) {
        s = lo; /* NaN too */
    }
    if (s > hi) {
        s = hi;
    }
    r = (int32_t)s; /* truncates */
    return (int8_t)((r + (r > 0) - (r < 0)) / 2 + zero_point);
}
#else
/* float32 -> int8: clamp(round(v / scale) + zero_point), half away from zero (no libm);
   s saturates where the result does (-128, 127) */
RLB_API int8_t rlb_quantize(float v, float scale, int32_t zero_point)
{
    float s = v / scale;
    const float lo = (float)(-128 - zero_point), hi = (float)(127 - zero_point);
    int32_t r;
    float frac;
    if (!(s >= lo)) {
        s = lo; /* NaN too */
    }
    if (s > hi) {
        s = hi;
    }
    r = (int32_t)s; /* truncates */
    frac = s - (float)r;
    if (frac >= 0.5f) {
        r += 1;
    } else if (frac <= -0.5f) {
        r -= 1;
    }
    return (int8_t)(r + zero_point);
}
#endif
