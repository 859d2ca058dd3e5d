/* rlbudget C runtime: an odd int8 tanh from its 17 knots (rlbudget.policy.knots).
 *
 * No parameters. The knots are the table's values at the inputs 0, 8, ..., 128, linear
 * between them, in integers: the export's dense_int8 (RLB_KNOTS 1) calls it.
 */
#ifndef RLB_API
#define RLB_API
#include "runtime.h"
#endif

/* an odd int8 tanh from its 17 knots, its values at the inputs 0, 8, ..., 128, linear
   between them (rlbudget.policy.knots); v in [-127, 127] */
RLB_API int8_t rlb_knots(RLB_CONST int8_t *knots, int32_t v)
{
    const int32_t sign = v >> 31; /* -1 or 0: an arithmetic shift, as rlb_rhm assumes */
    const int32_t a = (v ^ sign) - sign;
    RLB_CONST int8_t *k = knots + (a >> 3);
    const int32_t t = k[0] + (((k[1] - k[0]) * (a & 7) + 4) >> 3);
    return (int8_t)((t ^ sign) - sign);
}
