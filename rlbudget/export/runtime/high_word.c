/* rlbudget C runtime: requantization with one rounding of the product's high word.
 *
 * No parameters. For layers whose every shift is <= -2 (a multiplier below 1/4, the usual
 * case): as exact as TFLite's rlb_mbqm (fixed_point.c) and fewer instructions (on
 * Cortex-M, the high word of one smull). rlbudget's numpy: rounded_high_mul.
 */
#ifndef RLB_API
#define RLB_API
#include "runtime.h"
#endif

/* x * multiplier * 2^(shift - 31) rounded half up, for shift <= -2: the high word of the
   product, then k = -1 - shift bits with one rounding (rlbudget's rounded_high_mul) */
RLB_API int32_t rlb_rhm(int32_t x, int32_t multiplier, int32_t shift)
{
    const int32_t k = -1 - shift;
    const int32_t high = (int32_t)(((int64_t)x * multiplier) >> 32);
    return (high + (1 << (k - 1))) >> k;
}
