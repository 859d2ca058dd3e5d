/* rlbudget C runtime: the argmax head.
 *
 * Parameters: RLB_VALUE, the type of the values (float, int8_t or int32_t); RLB_TABLE 1
 * when they are a row of a constant table (RLB_CONST: flash on AVR), 0 for a buffer. The
 * export names each instance rlb_argmax, plus _int8 or _int32 for the integer types, or
 * _table.
 */
#ifndef RLB_API
#define RLB_API
#include "runtime.h"
#endif
#ifndef RLB_VALUE
#define RLB_VALUE float
#endif
#ifndef RLB_TABLE
#define RLB_TABLE 0
#endif

/* index of the first largest value (numpy's argmax) */
#if RLB_TABLE
RLB_API int rlb_argmax(RLB_CONST RLB_VALUE *y, int32_t n)
#else
RLB_API int rlb_argmax(const RLB_VALUE *y, int32_t n)
#endif
{
    int32_t i, best = 0;
    for (i = 1; i < n; ++i) {
        if (y[i] > y[best]) {
            best = i;
        }
    }
    return (int)best;
}
