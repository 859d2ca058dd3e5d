/* rlbudget C runtime: one float layer with its weights in CSR, float32 or float16.
 *
 * Only the kept weights are stored, one multiply each. Parameters: RLB_HALF, RLB_WEIGHT,
 * RLB_RELU, RLB_TANH, RLB_SIGMOID as in dense_float.c; RLB_INDEX and RLB_POINTER, the
 * unsigned types of the column indices and the row starts (uint8_t, uint16_t, uint32_t).
 * The export names each instance rlb_sparse_f32 or rlb_sparse_f16, plus the two types.
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
#ifndef RLB_INDEX
#define RLB_INDEX uint8_t
#endif
#ifndef RLB_POINTER
#define RLB_POINTER uint16_t
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

/* one CSR layer: y = act(W x + b); output j sums x[col[k]] * w[k] for k from start[j] to
   start[j + 1], in increasing input order (the zeros left out add nothing); act: 0
   identity, 1 relu, 2 tanh, 3 sigmoid; with float16 weights, to_half rounds y to float16 */
#if RLB_HALF
RLB_API void rlb_sparse_f32(const float *x, float *y, RLB_CONST uint16_t *w,
    RLB_CONST RLB_INDEX *col, RLB_CONST RLB_POINTER *start, RLB_CONST uint16_t *b,
    int32_t n_out, int act, int to_half)
#else
RLB_API void rlb_sparse_f32(const float *x, float *y, RLB_CONST float *w,
    RLB_CONST RLB_INDEX *col, RLB_CONST RLB_POINTER *start, RLB_CONST float *b,
    int32_t n_out, int act)
#endif
{
    int32_t j;
    uint32_t k;
    float acc;
#if !RLB_RELU && !RLB_TANH && !RLB_SIGMOID
    (void)act;
#endif
    for (j = 0; j < n_out; ++j) {
        acc = 0.0f;
        for (k = start[j]; k < start[j + 1]; ++k) {
#if RLB_HALF
            acc += x[col[k]] * rlb_h2f(w[k]);
#else
            acc += x[col[k]] * w[k];
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
