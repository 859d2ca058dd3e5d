/* rlbudget C runtime: gemmlowp / TFLite fixed-point requantization of an int32 accumulator.
 *
 * Parameters: RLB_LEFT_SHIFT 1 when some layer's shift is > 0 (a saturating left shift),
 * 0 when every shift is a right shift (the left shift's code is left out).
 */
#ifndef RLB_API
#define RLB_API
#include "runtime.h"
#endif
#ifndef RLB_LEFT_SHIFT
#define RLB_LEFT_SHIFT 1
#endif

/* gemmlowp SaturatingRoundingDoublingHighMul; b (a multiplier >= 0) is never INT32_MIN */
RLB_API int32_t rlb_srdhm(int32_t a, int32_t b)
{
    const int64_t ab = (int64_t)a * (int64_t)b;
    const int64_t nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* C division truncates */
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent, rounded half away from zero */
RLB_API int32_t rlb_rdbpot(int32_t x, int32_t exponent)
{
    const int32_t mask = (int32_t)((UINT32_C(1) << exponent) - 1u); /* exponent <= 31 */
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier; the left shift saturates (as rlbudget's numpy) */
RLB_API int32_t rlb_mbqm(int32_t x, int32_t multiplier, int32_t shift)
{
#if RLB_LEFT_SHIFT
    if (shift > 0) {
        int64_t s = (int64_t)x * ((int64_t)1 << shift);
        if (s > INT32_MAX) {
            s = INT32_MAX;
        }
        if (s < INT32_MIN) {
            s = INT32_MIN;
        }
        x = (int32_t)s;
    }
    return rlb_rdbpot(rlb_srdhm(x, multiplier), shift > 0 ? 0 : -shift);
#else
    return rlb_rdbpot(rlb_srdhm(x, multiplier), -shift);
#endif
}
