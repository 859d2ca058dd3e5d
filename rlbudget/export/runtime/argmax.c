/* rlbudget C runtime: the argmax head.
 *
 * Parameters: RLB_VALUE, the type of the values (float, int8_t or int32_t). The export
 * names each instance rlb_argmax, plus _int8 or _int32 for the integer types.
 */
#ifndef RLB_API
#define RLB_API
#include "runtime.h"
#endif
#ifndef RLB_VALUE
#define RLB_VALUE float
#endif

/* index of the first largest value (numpy's argmax) */
RLB_API int rlb_argmax(const RLB_VALUE *y, int32_t n)
{
    int32_t i, best = 0;
    for (i = 1; i < n; ++i) {
        if (y[i] > y[best]) {
            best = i;
        }
    }
    return (int)best;
}
