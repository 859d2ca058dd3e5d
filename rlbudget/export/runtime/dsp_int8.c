/* rlbudget C runtime: int8 dot products with the Cortex-M4/M7 DSP instructions.
 *
 * Compiled only where the compiler targets the Armv7E-M DSP extension (ACLE's
 * __ARM_FEATURE_DSP: gcc and clang define it for -mcpu=cortex-m4, m7, m33 with DSP);
 * elsewhere the int8 kernels keep their portable loop. CMSIS-NN's method: a layer's input
 * minus its zero point is expanded once to int16 pairs (x - zp is -255..255), then each
 * 32-bit load of four int8 weights gives two pairs (SXTB16, and SXTB16 of it rotated by 8
 * bits), each multiplied with an input pair and summed into an int32 accumulator (SMLAD):
 * four multiply-accumulates in two instructions, two rows at a time so that each input
 * pair is loaded once for both. The sums are the portable loop's int32 sums exactly.
 *
 * The expanded input lives in rlb_x16 (policy.c declares it, sized for the widest int8
 * layer input: two int32 per group of four inputs); the export counts it in the RAM.
 */
#ifndef RLB_API
#define RLB_API
#include "runtime.h"
#endif
#if defined(__ARM_FEATURE_DSP) && !defined(__OPTIMIZE_SIZE__)
#include <arm_acle.h>
#include <string.h>

/* (x[i] - zp) for the first 4 * (n / 4) inputs, as int16 pairs in q: per group of four,
   q[0] holds inputs 0 and 2, q[1] inputs 1 and 3 (the order SXTB16 reads weights in) */
RLB_API void rlb_expand_int8(const int8_t *x, int32_t *q, int32_t n, int32_t zp)
{
    const int32_t minus_zp = (int32_t)(((uint32_t)-zp & 0xFFFFu) * 0x10001u);
    uint32_t v;
    for (; n >= 4; n -= 4, x += 4, q += 2) {
        memcpy(&v, x, 4);
        q[0] = __sxtab16(minus_zp, v);
        q[1] = __sxtab16(minus_zp, (v >> 8) | (v << 24));
    }
}

/* SXTB16 of w rotated right by 8 bits (its bytes 1 and 3 as an int16 pair): one instruction
   with gcc and clang's inline assembly (they do not fold the rotation into SXTB16) */
RLB_API uint32_t rlb_sxtb16_ror8(uint32_t w)
{
#if defined(__GNUC__)
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(w));
    return r;
#else
    return __sxtb16((w >> 8) | (w << 24));
#endif
}

/* sums[k] = row k's dot product with the expanded input q over its first 4 * (n_in / 4)
   weights, for the rows k < n (n <= 16) from w on; two rows at a time, eight weights of each
   per loop (the last of an odd n is computed twice) */
RLB_API void rlb_dot_int8(const int32_t *q, const int8_t *w, int32_t n_in, int32_t n,
                          int32_t *sums)
{
    const int32_t *p;
    const int8_t *r0, *r1, *end;
    int32_t s0, s1;
    uint32_t a, b; /* four weights each: one LDR, as Armv7E-M loads unaligned words */
    for (; n > 0; n -= 2, sums += 2, w += 2 * n_in) {
        r0 = w;
        r1 = n > 1 ? w + n_in : w;
        end = w + (n_in & ~7);
        s0 = s1 = 0;
        for (p = q; r0 != end; p += 4, r0 += 8, r1 += 8) {
            memcpy(&a, r0, 4);
            memcpy(&b, r1, 4);
            s0 = __smlad(__sxtb16(a), p[0], s0);
            s0 = __smlad(rlb_sxtb16_ror8(a), p[1], s0);
            s1 = __smlad(__sxtb16(b), p[0], s1);
            s1 = __smlad(rlb_sxtb16_ror8(b), p[1], s1);
            memcpy(&a, r0 + 4, 4);
            memcpy(&b, r1 + 4, 4);
            s0 = __smlad(__sxtb16(a), p[2], s0);
            s0 = __smlad(rlb_sxtb16_ror8(a), p[3], s0);
            s1 = __smlad(__sxtb16(b), p[2], s1);
            s1 = __smlad(rlb_sxtb16_ror8(b), p[3], s1);
        }
        if (n_in & 4) {
            memcpy(&a, r0, 4);
            memcpy(&b, r1, 4);
            s0 = __smlad(__sxtb16(a), p[0], s0);
            s0 = __smlad(rlb_sxtb16_ror8(a), p[1], s0);
            s1 = __smlad(__sxtb16(b), p[0], s1);
            s1 = __smlad(rlb_sxtb16_ror8(b), p[1], s1);
        }
        sums[0] = s0;
        sums[1] = s1;
    }
}
#endif
