/* rlbudget C runtime: one int8 fully connected layer, requantized to int8 (TFLite Micro).
 *
 * Parameters: RLB_BIAS, the bias type (int32_t, or int16_t where every bias fits);
 * RLB_ODD_LUT 1 when lut holds an odd table's entries for the inputs 0..127 (tanh), 0 when
 * lut is a full 256-entry table or NULL (no table). The export names each instance
 * rlb_dense_int8, plus _b16 for an int16 bias and _odd for an odd table.
 */
#ifndef RLB_API
#define RLB_API
#include "runtime.h"
#endif
#ifndef RLB_BIAS
#define RLB_BIAS int32_t
#endif
#ifndef RLB_ODD_LUT
#define RLB_ODD_LUT 0
#endif

/* one int8 fully connected layer (TFLite Micro); w is [n_out][n_in]; multiplier and shift
   per output channel (ch = 1) or one for the layer (ch = 0) */
RLB_API void rlb_dense_int8(const int8_t *x, int8_t *y, const int8_t *w, const RLB_BIAS *b,
                           const int32_t *multiplier, const int8_t *shift, int32_t ch,
                           int32_t n_in, int32_t n_out, int32_t in_zp, int32_t out_zp,
                           int32_t lo, const int8_t *lut)
{
    int32_t i, j, acc;
    const int32_t hi = 127 - out_zp; /* clamp(acc + out_zp, lo, 127), no overflow */
    lo -= out_zp;
    for (j = 0; j < n_out; ++j) {
        const int8_t *row = w + j * n_in;
        acc = b[j];
        for (i = 0; i < n_in; ++i) {
            acc += ((int32_t)x[i] - in_zp) * (int32_t)row[i];
        }
        acc = rlb_mbqm(acc, multiplier[j * ch], shift[j * ch]);
        acc = (acc < lo ? lo : (acc > hi ? hi : acc)) + out_zp;
#if RLB_ODD_LUT
        /* an odd table (tanh) holds its entries for 0..127; input -128 reads as -127 */
        y[j] = (int8_t)(acc < 0 ? -lut[acc < -127 ? 127 : -acc] : lut[acc]);
#else
        y[j] = lut ? lut[acc + 128] : (int8_t)acc;
#endif
    }
}
