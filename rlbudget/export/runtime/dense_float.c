/* rlbudget C runtime: one float layer with dense weights, float32 or float16.
 *
 * Parameters: RLB_HALF 1 for float16 weights and biases (uint16_t bit patterns converted
 * exactly by rlb_h2f; sums in float32; to_half rounds the output to float16), 0 for
 * float32; RLB_WEIGHT, their C type (float or uint16_t); RLB_RELU, RLB_TANH, RLB_SIGMOID
 * 1 for each activation a layer uses (identity needs no code; tanh and sigmoid need libm).
 * The export names each instance rlb_dense_f32 or rlb_dense_f16.
 */
#ifndef RLB_API
#define RLB_API
#include "runtime.h"
#endif
#ifndef RLB_HALF
#define RLB_HALF 0
#endif
#ifndef RLB_WEIGHT
#define RLB_WEIGHT float
#endif
#ifndef RLB_RELU
#define RLB_RELU 1
#endif
#ifndef RLB_TANH
#define RLB_TANH 1
#endif
#ifndef RLB_SIGMOID
#define RLB_SIGMOID 1
#endif

/* one dense layer: y = act(W x + b); w is [n_out][n_in]; act: 0 identity, 1 relu, 2 tanh,
   3 sigmoid; with float16 weights, to_half rounds y to float16 */
#if RLB_HALF
RLB_API void rlb_dense_f32(const float *x, float *y, RLB_CONST uint16_t *w,
    RLB_CONST uint16_t *b, int32_t n_in, int32_t n_out, int act, int to_half)
#else
RLB_API void rlb_dense_f32(const float *x, float *y, RLB_CONST float *w,
    RLB_CONST float *b, int32_t n_in, int32_t n_out, int act)
#endif
{
    int32_t i, j;
    float acc;
#if !RLB_RELU && !RLB_TANH && !RLB_SIGMOID
    (void)act;
#endif
    for (j = 0; j < n_out; ++j) {
        RLB_CONST RLB_WEIGHT *row = w + j * n_in;
        acc = 0.0f;
        for (i = 0; i < n_in; ++i) {
#if RLB_HALF
            acc += x[i] * rlb_h2f(row[i]);
#else
            acc += x[i] * row[i];
#endif
        }
#if RLB_HALF
        acc += rlb_h2f(b[j]);
#else
        acc += b[j];
#endif
#if RLB_RELU
        if (act == 1) {
            acc = acc < 0.0f ? 0.0f : acc;
        }
#endif
#if RLB_TANH
        if (act == 2) {
            acc = tanhf(acc);
        }
#endif
#if RLB_SIGMOID
        if (act == 3) {
            acc = 1.0f / (1.0f + expf(-acc));
        }
#endif
#if RLB_HALF
        y[j] = to_half ? rlb_round_half(acc) : acc;
#else
        y[j] = acc;
#endif
    }
}
