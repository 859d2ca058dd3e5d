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
#if !RLB_POOL
    const int32_t ph = g[10], pw = g[11];
#endif
#if !RLB_POOL && !RLB_DEPTHWISE
    int32_t i;
#endif
    (void)h;
    for (oy = 0; oy < oh; ++oy) {
        for (ox = 0; ox < ow; ++ox) {
            for (o = 0; o < co; ++o) {
#if RLB_POOL && RLB_AVG
                float acc = 0.0f;
#elif RLB_POOL
                float acc = x[(oy * sh * wd + ox * sw) * c + o];
#else
                float acc = 0.0f;
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
                        const float v = x[(iy * wd + ox * sw + kx) * c + o];
#if RLB_AVG
                        acc += v;
#else
                        acc = v > acc ? v : acc;
#endif
#else
                        const int32_t ix = ox * sw - pw + kx;
                        const float *px;
                        if (ix < 0 || ix >= wd) {
                            continue;
                        }
                        px = x + (iy * wd + ix) * c;
#if RLB_DEPTHWISE
                        acc += px[o] * w[(ky * kw + kx) * c + o];
#else
                        for (i = 0; i < c; ++i) {
                            acc += px[i] * w[((o * kh + ky) * kw + kx) * c + i];
                        }
#endif
#endif
                    }
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
