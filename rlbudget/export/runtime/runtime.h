/* rlbudget C runtime: what a runtime file needs when it is compiled on its own.
 *
 * Each .c file in this folder holds one piece of the runtime (a kernel and its helpers).
 * rlbudget's C export pastes the pieces a policy uses into its policy.c, as `static`
 * functions, with the piece's parameters (RLB_* macros) replaced by their values and the
 * #if branches it does not take left out: the exported folder stays self-contained and
 * holds no unused code. The tests compile every file on its own, for every value of its
 * parameters:
 *
 *     cc -std=c99 -Wall -Wextra -Werror -pedantic -c dense_int8.c -DRLB_ODD_LUT=1
 *
 * Compiled on its own, a file includes this header and its functions are external
 * (RLB_API is empty); the model arrays it reads are declared extern here.
 */
#ifndef RLB_RUNTIME_H
#define RLB_RUNTIME_H

#include <math.h>
#include <stdint.h>

/* RLB_CONST qualifies the model's constant arrays and the pointers that read them. On AVR
 * (Harvard: a plain const array is copied to SRAM at start-up) it puts them in flash with
 * avr-gcc's __flash named address space (C with GNU extensions: -std=gnu99 or gnu11, the
 * Arduino default; under a strict -std=c99 they stay plain const, in SRAM); elsewhere
 * const, which the linker already keeps in flash. */
#if defined(__AVR__) && defined(__FLASH) && !defined(__STRICT_ANSI__)
#define RLB_CONST const __flash
#else
#define RLB_CONST const
#endif

/* functions one piece calls in another */
float rlb_input(const float *obs, int32_t i);
int32_t rlb_mbqm(int32_t x, int32_t multiplier, int32_t shift);
int32_t rlb_rhm(int32_t x, int32_t multiplier, int32_t shift);
int8_t rlb_knots(RLB_CONST int8_t *knots, int32_t v);
float rlb_h2f(uint16_t h);
float rlb_round_half(float f);
int32_t rlb_popcount8(uint32_t v);
void rlb_expand_int8(const int8_t *x, int32_t *q, int32_t n, int32_t zp);
void rlb_dot_int8(const int32_t *q, const int8_t *w, int32_t n_in, int32_t n, int32_t *sums);

/* model data, generated into policy.c */
extern RLB_CONST float rlb_norm_mean[];
extern RLB_CONST float rlb_norm_std[];
extern RLB_CONST float rlb_disc_low[];
extern RLB_CONST float rlb_disc_scale[];
extern RLB_CONST int32_t rlb_disc_bins[];
extern RLB_CONST uint8_t rlb_packed[];
extern RLB_CONST uint8_t rlb_stored[];
extern RLB_CONST uint16_t rlb_rank[];
extern int32_t rlb_x16[]; /* the DSP kernels' expanded input (dsp_int8.c) */

#endif /* RLB_RUNTIME_H */
