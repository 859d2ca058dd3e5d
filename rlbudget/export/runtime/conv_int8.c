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
#if RLB_POOL
        const int32_t y0 = oy * sh, ky0 = 0, ky1 = kh;
#else
        /* the kernel rows inside the image: the padding adds nothing */
        const int32_t y0 = oy * sh - ph;
        const int32_t ky0 = y0 < 0 ? -y0 : 0, ky1 = y0 + kh > h ? h - y0 : kh;
#endif
        for (ox = 0; ox < ow; ++ox) {
#if RLB_POOL
            const int32_t x0 = ox * sw, kx0 = 0, kx1 = kw;
#else
            const int32_t x0 = ox * sw - pw;
            const int32_t kx0 = x0 < 0 ? -x0 : 0, kx1 = x0 + kw > wd ? wd - x0 : kw;
#endif
            for (o = 0; o < co; ++o) {
#if RLB_POOL && RLB_AVG
                acc = 0;
#elif RLB_POOL
                acc = x[(y0 * wd + x0) * c + o];
#else
                acc = b[o];
#endif
                for (ky = ky0; ky < ky1; ++ky) {
                    const int8_t *px = x + ((y0 + ky) * wd + x0 + kx0) * c;
#if RLB_POOL
                    for (kx = kx0; kx < kx1; ++kx, px += c) {
#if RLB_AVG
                        acc += px[o];
#else
                        acc = px[o] > acc ? px[o] : acc;
#endif
                    }
#elif RLB_DEPTHWISE
                    RLB_CONST int8_t *wk = w + (ky * kw + kx0) * c + o;
                    for (kx = kx0; kx < kx1; ++kx, px += c, wk += c) {
                        acc += ((int32_t)px[o] - in_zp) * (int32_t)*wk;
                    }
#else
                    /* the row's taps and channels lie next to each other in x and in w */
                    RLB_CONST int8_t *wk = w + ((o * kh + ky) * kw + kx0) * c;
                    const int32_t m = (kx1 - kx0) * c;
                    (void)kx;
                    for (i = 0; i < m; ++i) {
                        acc += ((int32_t)px[i] - in_zp) * (int32_t)wk[i];
                    }
#endif
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
