/* rlbudget C runtime: a float32 convolution or pooling layer on channels-last activations.
 *
 * Parameters: RLB_POOL 0 for a convolution, 1 for a pool (no weights, no padding);
 * RLB_DEPTHWISE (convolution) 1 for one kernel per channel, w [kh][kw][c], 0 for a full
 * convolution, w [c_out][kh][kw][c_in]; RLB_AVG (pool) 1 for the mean of each window, 0
 * for its maximum. x is [h][w][c_in], y [out_h][out_w][c_out]; g holds the geometry:
 * {h, w, c_in, out_h, out_w, c_out, kh, kw, stride_h, stride_w, pad_h, pad_w}; padding
 * reads zeros (taps outside the image are skipped). The export names each instance
 * rlb_conv_f32, rlb_depthwise_f32, rlb_maxpool_f32 or rlb_avgpool_f32.
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

#if RLB_POOL
/* one pooling layer over windows of kh x kw, no padding */
RLB_API void rlb_conv_f32(const float *x, float *y, RLB_CONST int32_t *g)
#else
/* one convolution: y = relu?(sum of the window's taps times w, plus b) */
RLB_API void rlb_conv_f32(const float *x, float *y, RLB_CONST float *w, RLB_CONST float *b,
                          RLB_CONST int32_t *g, int relu)
#endif
{
    const int32_t h = g[0], wd = g[1], c = g[2], oh = g[3], ow = g[4], co = g[5];
    const int32_t kh = g[6], kw = g[7], sh = g[8], sw = g[9];
    int32_t oy, ox, o, ky, kx;
    float acc;
#if !RLB_POOL
    const int32_t ph = g[10], pw = g[11];
#endif
#if !RLB_POOL && !RLB_DEPTHWISE
    int32_t i;
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
                acc = 0.0f;
#elif RLB_POOL
                acc = x[(y0 * wd + x0) * c + o];
#else
                acc = 0.0f;
#endif
                for (ky = ky0; ky < ky1; ++ky) {
                    const float *px = x + ((y0 + ky) * wd + x0 + kx0) * c;
#if RLB_POOL
                    for (kx = kx0; kx < kx1; ++kx, px += c) {
#if RLB_AVG
                        acc += px[o];
#else
                        acc = px[o] > acc ? px[o] : acc;
#endif
                    }
#elif RLB_DEPTHWISE
                    RLB_CONST float *wk = w + (ky * kw + kx0) * c + o;
                    for (kx = kx0; kx < kx1; ++kx, px += c, wk += c) {
                        acc += px[o] * *wk;
                    }
#else
                    /* the row's taps and channels lie next to each other in x and in w */
                    RLB_CONST float *wk = w + ((o * kh + ky) * kw + kx0) * c;
                    const int32_t m = (kx1 - kx0) * c;
                    (void)kx;
                    for (i = 0; i < m; ++i) {
                        acc += px[i] * wk[i];
                    }
#endif
                }
#if RLB_POOL && RLB_AVG
                acc = acc / (float)(kh * kw);
#elif !RLB_POOL
                acc += b[o];
                if (relu && acc < 0.0f) {
                    acc = 0.0f;
                }
#endif
                y[(oy * ow + ox) * co + o] = acc;
            }
        }
    }
}
