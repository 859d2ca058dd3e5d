/* rlbudget C runtime: int8 dot products with the Cortex-M4/M7 DSP instructions.
 *
 * Compiled only where the compiler targets the Armv7E-M DSP extension (ACLE's
 * __ARM_FEATURE_DSP: -mcpu=cortex-m4, m7, m33...), speaks GNU inline assembly (gcc, clang)
 * and does not optimize for size (-Os: the portable loop is ~300 B smaller); elsewhere the
 * int8 kernels keep their portable loop. CMSIS-NN's method: a layer's input minus its zero
 * point is expanded once to int16 pairs (x - zp is -255..255), then each 32-bit load of
 * four int8 weights gives two int16 pairs (SXTB16, and SXTB16 of it rotated by 8 bits),
 * each multiplied with an input pair and added to an int32 sum (SMLAD): four
 * multiply-accumulates in four instructions, two rows at a time so that each input pair is
 * loaded once for both. The sums are the portable loop's int32 sums exactly (SMLAD wraps as
 * int32 addition does; it only sets the Q flag).
 *
 * The loop is assembly because gcc neither folds the rotation into SXTB16 nor keeps the
 * loop's eleven values in registers (C with ACLE intrinsics: 34 cycles per 16
 * multiply-accumulates on the emulated M4, and spills around it; this: 29).
 *
 * The expanded input lives in rlb_x16 (policy.c declares it, sized for the widest int8
 * layer input: two int32 per group of four inputs).
 */
#ifndef RLB_API
#define RLB_API
#include "runtime.h"
#endif
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && !defined(__OPTIMIZE_SIZE__)
#include <arm_acle.h>
#include <string.h>

/* (x[i] - zp) for the first 4 * (n / 4) inputs, as int16 pairs in q: per group of four,
   q[0] holds inputs 0 and 2, q[1] inputs 1 and 3 (the order SXTB16 reads weights in) */
RLB_API void rlb_expand_int8(const int8_t *x, int32_t *q, int32_t n, int32_t zp)
{
    const int32_t minus_zp = (int32_t)(((uint32_t)-zp & 0xFFFFu) * 0x10001u);
    uint32_t v;
    for (; n >= 4; n -= 4, x += 4, q += 2) {
        memcpy(&v, x, 4); /* one LDR: Armv7E-M loads unaligned words */
        q[0] = __sxtab16(minus_zp, v);
        q[1] = __sxtab16(minus_zp, (v >> 8) | (v << 24));
    }
}

/* sums[k] = row k's dot product with the expanded input q over its first 4 * (n_in / 4)
   weights, for the rows k < n (n <= 16) from w on: two rows at a time (the last of an odd
   n twice), eight weights of each per loop (an odd group of four first, by entering the
   loop at its second half) */
RLB_API void rlb_dot_int8(const int32_t *q, const int8_t *w, int32_t n_in, int32_t n,
                          int32_t *sums)
{
    const int32_t *p;
    const int8_t *r0, *r1, *end;
    int32_t s0, s1;
    uint32_t a, b, x02, x13, t;
    for (; n > 0; n -= 2, sums += 2, w += 2 * n_in) {
        r0 = w;
        r1 = n > 1 ? w + n_in : w;
        end = w + (n_in & ~3);
        p = q;
        s0 = s1 = 0;
        if (r0 != end) {
            __asm__("tst %[n_in], #4\n\t"
                    "bne 2f\n"
                    "1:\n\t"
                    "ldr %[a], [%[r0]], #4\n\t"
                    "ldr %[b], [%[r1]], #4\n\t"
                    "ldr %[x02], [%[p]], #4\n\t"
                    "ldr %[x13], [%[p]], #4\n\t"
                    "sxtb16 %[t], %[a]\n\t"
                    "smlad %[s0], %[t], %[x02], %[s0]\n\t"
                    "sxtb16 %[a], %[a], ror #8\n\t"
                    "smlad %[s0], %[a], %[x13], %[s0]\n\t"
                    "sxtb16 %[t], %[b]\n\t"
                    "smlad %[s1], %[t], %[x02], %[s1]\n\t"
                    "sxtb16 %[b], %[b], ror #8\n\t"
                    "smlad %[s1], %[b], %[x13], %[s1]\n\t"
                    "2:\n\t"
                    "ldr %[a], [%[r0]], #4\n\t"
                    "ldr %[b], [%[r1]], #4\n\t"
                    "ldr %[x02], [%[p]], #4\n\t"
                    "ldr %[x13], [%[p]], #4\n\t"
                    "sxtb16 %[t], %[a]\n\t"
                    "smlad %[s0], %[t], %[x02], %[s0]\n\t"
                    "sxtb16 %[a], %[a], ror #8\n\t"
                    "smlad %[s0], %[a], %[x13], %[s0]\n\t"
                    "sxtb16 %[t], %[b]\n\t"
                    "smlad %[s1], %[t], %[x02], %[s1]\n\t"
                    "sxtb16 %[b], %[b], ror #8\n\t"
                    "smlad %[s1], %[b], %[x13], %[s1]\n\t"
                    "cmp %[r0], %[end]\n\t"
                    "bne 1b"
                    : [r0] "+&r"(r0), [r1] "+&r"(r1), [p] "+&r"(p), [s0] "+&r"(s0),
                      [s1] "+&r"(s1), /* early clobber: written before end, n_in are read */
                      [a] "=&r"(a), [b] "=&r"(b), [x02] "=&r"(x02), [x13] "=&r"(x13),
                      [t] "=&r"(t)
                    : [end] "r"(end), [n_in] "r"(n_in)
                    : "cc", "memory");
        }
        sums[0] = s0;
        sums[1] = s1;
    }
}
#endif
