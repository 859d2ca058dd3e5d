/* rlbudget C runtime: an int8 convolution or pooling layer on channels-last activations
 * (TFLite Micro's per-channel int8 conv, depthwise conv, max and average pool).
 *
 * Parameters: RLB_POOL 0 for a convolution, 1 for a pool (no weights, no padding; the
 * output has the input's scale and zero point); RLB_DEPTHWISE (convolution) 1 for one
 * kernel per channel, w [kh][kw][c], 0 for a full convolution, w [c_out][kh][kw][c_in];
 * RLB_BIAS, the bias type (int32_t, or int16_t where every bias fits); RLB_REQUANTIZE,
 * rlb_mbqm (TFLite's two roundings) or rlb_rhm (one rounding of the product's high word);
 * RLB_AVG (pool) 1 for the mean of each window rounded half away from zero (TFLite's
 * int8 AveragePool), 0 for its maximum. x is [h][w][c_in], y [out_h][out_w][c_out]; g holds
 * {h, w, c_in, out_h, out_w, c_out, kh, kw, stride_h, stride_w, pad_h, pad_w}; a tap in
 * the padding reads the input zero point, so it adds nothing and is skipped. multiplier
 * and shift per output channel (ch = 1) or one for the layer (ch = 0). The export names
 * each instance rlb_conv_int8, rlb_depthwise_int8, rlb_maxpool_int8 or rlb_avgpool_int8
 * (plus _b16 for an int16 bias and _hw for rlb_rhm).
 */
#ifndef RLB_API
#define RLB_API
#include "runtime.h"
#endif
#ifndef RLB_POOL
#define RLB_POOL 0
#endif
#ifndef RLB_DEPTHWISE
#define RLB_DEPTHWISE 0
#endif
#ifndef RLB_AVG
#define RLB_AVG 0
#endif
#ifndef RLB_BIAS
#define RLB_BIAS int32_t
#endif
#ifndef RLB_REQUANTIZE
#define RLB_REQUANTIZE rlb_mbqm
#endif

#if RLB_POOL
/* one int8 pooling layer over windows of kh x kw, no padding */
RLB_API void rlb_conv_int8(const int8_t *x, int8_t *y, RLB_CONST int32_t *g)
#else
/* one int8 convolution: the window's int32 sum of (x - in_zp) * w plus b, requantized,
   clamped to [lo, 127] (lo: out_zp for relu, else -128) */
RLB_API void rlb_conv_int8(const int8_t *x, int8_t *y, RLB_CONST int8_t *w,
                           RLB_CONST RLB_BIAS *b, RLB_CONST int32_t *multiplier,
                           RLB_CONST int8_t *shift, int32_t ch, RLB_CONST int32_t *g,
                           int32_t in_zp, int32_t out_zp, int32_t lo)
#endif
{
    const int32_t h = g[0], wd = g[1], c = g[2], oh = g[3], ow = g[4], co = g[5];
    const int32_t kh = g[6], kw = g[7], sh = g[8], sw = g[9];
    int32_t oy, ox, o, ky, kx, acc;
#if !RLB_POOL
    const int32_t ph = g[10], pw = g[11];
    const int32_t hi = 127 - out_zp; /* clamp(acc + out_zp, lo, 127), no overflow */
#endif
#if !RLB_POOL && !RLB_DEPTHWISE
    int32_t i;
#endif
#if RLB_POOL && RLB_AVG
    const int32_t n = kh * kw;
#endif
#if !RLB_POOL
    lo -= out_zp;
#endif
    (void)h;
    for (oy = 0; oy < oh; ++oy) {
        for (ox = 0; ox < ow; ++ox) {
            for (o = 0; o < co; ++o) {
#if RLB_POOL && RLB_AVG
                acc = 0;
#elif RLB_POOL
                acc = x[(oy * sh * wd + ox * sw) * c + o];
#else
                acc = b[o];
#endif
                for (ky = 0; ky < kh; ++ky) {
#if RLB_POOL
                    const int32_t iy = oy * sh + ky;
#else
                    const int32_t iy = oy * sh - ph + ky;
                    if (iy < 0 || iy >= h) {
                        continue;
                    }
#endif
                    for (kx = 0; kx < kw; ++kx) {
#if RLB_POOL
                        const int32_t v = x[(iy * wd + ox * sw + kx) * c + o];
#if RLB_AVG
                        acc += v;
#else
                        acc = v > acc ? v : acc;
#endif
#else
                        const int32_t ix = ox * sw - pw + kx;
                        const int8_t *px;
                        if (ix < 0 || ix >= wd) {
                            continue;
                        }
                        px = x + (iy * wd + ix) * c;
#if RLB_DEPTHWISE
                        acc += ((int32_t)px[o] - in_zp) * (int32_t)w[(ky * kw + kx) * c + o];
#else
                        for (i = 0; i < c; ++i) {
                            acc += ((int32_t)px[i] - in_zp)
                                 * (int32_t)w[((o * kh + ky) * kw + kx) * c + i];
                        }
#endif
#endif
                    }
                }
#if RLB_POOL && RLB_AVG
                /* rounded half away from zero, with C's truncating division */
                acc = acc > 0 ? (acc + n / 2) / n : (acc - n / 2) / n;
#elif !RLB_POOL
                acc = RLB_REQUANTIZE(acc, multiplier[o * ch], shift[o * ch]);
                acc = (acc < lo ? lo : (acc > hi ? hi : acc)) + out_zp;
#endif
                y[(oy * ow + ox) * co + o] = (int8_t)acc;
            }
        }
    }
}
