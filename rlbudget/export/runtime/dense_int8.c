/* rlbudget C runtime: one int8 fully connected layer, requantized to int8 (TFLite Micro).
 *
 * Parameters: RLB_BIAS, the bias type (int32_t, or int16_t where every bias fits);
 * RLB_PER_CHANNEL 1 when multiplier and shift are arrays (per output channel, ch = 1, or
 * one for the layer, ch = 0), 0 when they are one multiplier and shift for the layer,
 * passed as arguments (no arrays, no loads); RLB_REQUANTIZE, the requantization:
 * rlb_mbqm (TFLite's two roundings) or rlb_rhm (one rounding of the product's high word,
 * every shift <= -2); RLB_KNOTS 1 when lut holds an odd tanh's 17 knots (rlb_knots),
 * else RLB_ODD_LUT 1 when lut holds an odd table's entries for the inputs 0..127 (tanh),
 * both 0 when lut is a full 256-entry table or NULL (no table). An odd table or knots need
 * lo >= -127 (input -128 reads as -127). The export names each instance rlb_dense_int8,
 * plus _b16 for an int16 bias, _odd or _knots for the table, _pc for per-channel
 * constants and _hw for rlb_rhm.
 */
#ifndef RLB_API
#define RLB_API
#include "runtime.h"
#endif
#ifndef RLB_BIAS
#define RLB_BIAS int32_t
#endif
#ifndef RLB_PER_CHANNEL
#define RLB_PER_CHANNEL 1
#endif
#ifndef RLB_REQUANTIZE
#define RLB_REQUANTIZE rlb_mbqm
#endif
#ifndef RLB_KNOTS
#define RLB_KNOTS 0
#endif
#ifndef RLB_ODD_LUT
#define RLB_ODD_LUT 0
#endif

#if RLB_PER_CHANNEL
/* one int8 fully connected layer (TFLite Micro); w is [n_out][n_in]; multiplier and shift
   per output channel (ch = 1) or one for the layer (ch = 0) */
RLB_API void rlb_dense_int8(const int8_t *x, int8_t *y, RLB_CONST int8_t *w,
                           RLB_CONST RLB_BIAS *b, RLB_CONST int32_t *multiplier,
                           RLB_CONST int8_t *shift, int32_t ch,
                           int32_t n_in, int32_t n_out, int32_t in_zp, int32_t out_zp,
                           int32_t lo, RLB_CONST int8_t *lut)
#else
/* one int8 fully connected layer (TFLite Micro); w is [n_out][n_in]; one multiplier and
   shift for the layer */
RLB_API void rlb_dense_int8(const int8_t *x, int8_t *y, RLB_CONST int8_t *w,
                           RLB_CONST RLB_BIAS *b, int32_t multiplier, int32_t shift,
                           int32_t n_in, int32_t n_out, int32_t in_zp, int32_t out_zp,
                           int32_t lo, RLB_CONST int8_t *lut)
#endif
{
    int32_t i, j, acc;
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && !defined(__OPTIMIZE_SIZE__)
    int32_t sums[16], *sum = sums + 16; /* sixteen rows' sums (rlb_dot_int8), the next */
    rlb_expand_int8(x, rlb_x16, n_in, in_zp);
#else
    const int32_t hi = 127 - out_zp; /* clamp(acc + out_zp, lo, 127), no overflow */
    lo -= out_zp;
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
#if RLB_PER_CHANNEL
        acc = RLB_REQUANTIZE(acc, multiplier[j * ch], shift[j * ch]);
#else
        acc = RLB_REQUANTIZE(acc, multiplier, shift);
#endif
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && !defined(__OPTIMIZE_SIZE__)
        /* clamp(acc + out_zp, lo, 127): a saturating add, SSAT to -128..127, then lo */
        acc = __ssat(__qadd(acc, out_zp), 8);
        acc = acc < lo ? lo : acc;
#else
        acc = (acc < lo ? lo : (acc > hi ? hi : acc)) + out_zp;
#endif
#if RLB_KNOTS
        y[j] = rlb_knots(lut, acc);
#elif RLB_ODD_LUT
        /* an odd table (tanh) holds its entries for 0..127; acc >= lo >= -127 */
        y[j] = (int8_t)(acc < 0 ? -lut[-acc] : lut[acc]);
#else
        y[j] = lut ? lut[acc + 128] : (int8_t)acc;
#endif
    }
}
