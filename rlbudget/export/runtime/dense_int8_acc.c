/* rlbudget C runtime: the last int8 layer of an argmax head, left as int32 accumulators.
 *
 * Parameters: RLB_BIAS, the bias type (int32_t, or int16_t where every bias fits). The
 * export names each instance rlb_dense_int8_acc, plus _b16 for an int16 bias.
 */
#ifndef RLB_API
#define RLB_API
#include "runtime.h"
#endif
#ifndef RLB_BIAS
#define RLB_BIAS int32_t
#endif

/* the last int8 layer of an argmax head with one dequantization scale: the int32
   accumulators themselves (their argmax is the dequantized values') */
RLB_API void rlb_dense_int8_acc(const int8_t *x, int32_t *y, RLB_CONST int8_t *w,
                               RLB_CONST RLB_BIAS *b,
                               int32_t n_in, int32_t n_out, int32_t in_zp)
{
    int32_t i, j, acc;
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && !defined(__OPTIMIZE_SIZE__)
    int32_t sums[16], *sum = sums + 16; /* sixteen rows' sums (rlb_dot_int8), the next */
    rlb_expand_int8(x, rlb_x16, n_in, in_zp);
#endif
    for (j = 0; j < n_out; ++j) {
        RLB_CONST int8_t *row = w + j * n_in;
        acc = b[j];
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && !defined(__OPTIMIZE_SIZE__)
        if (sum == sums + 16) { /* the next sixteen rows (or the rest) at once */
            rlb_dot_int8(rlb_x16, row, n_in, n_out - j < 16 ? n_out - j : 16, sums);
            sum = sums;
        }
        acc += *sum++;
        for (i = n_in & ~3; i < n_in; ++i) { /* the inputs after the last group of four */
#else
        for (i = 0; i < n_in; ++i) {
#endif
            acc += ((int32_t)x[i] - in_zp) * (int32_t)row[i];
        }
        y[j] = acc;
    }
}
