/* rlbudget C runtime: rlb_state(obs), the row of a table body.
 *
 * Parameters: RLB_DISCRETIZE 0 for a Discrete observation (obs[0] is the state, clamped
 * to 0..RLB_LAST_STATE), 1 for a uniform discretizer over RLB_DIMS dimensions of
 * rlb_input (its low, high - low and bins are the model arrays rlb_disc_low,
 * rlb_disc_range and rlb_disc_bins).
 */
#ifndef RLB_API
#define RLB_API
#include "runtime.h"
#endif
#ifndef RLB_DISCRETIZE
#define RLB_DISCRETIZE 1
#endif
#ifndef RLB_LAST_STATE
#define RLB_LAST_STATE 15
#endif
#ifndef RLB_DIMS
#define RLB_DIMS 4
#endif

#if RLB_DISCRETIZE
/* discretize: row-major index of clip(floor((x - low) / (high - low) * bins), 0, bins - 1) */
RLB_API int32_t rlb_state(const float *obs)
{
    int32_t d, k, state = 0;
    double s;
    for (d = 0; d < RLB_DIMS; ++d) {
        s = ((double)rlb_input(obs, d) - rlb_disc_low[d]) / rlb_disc_range[d]
            * (double)rlb_disc_bins[d];
        k = !(s >= 0.0) ? 0 /* clip(floor(s), 0, bins - 1); NaN: 0 */
            : (s >= (double)(rlb_disc_bins[d] - 1) ? rlb_disc_bins[d] - 1 : (int32_t)s);
        state = state * rlb_disc_bins[d] + k;
    }
    return state;
}
#else
/* a Discrete observation: obs[0] is the state, clamped to 0..RLB_LAST_STATE */
RLB_API int32_t rlb_state(const float *obs)
{
    const float v = obs[0];
    if (!(v >= 0.0f)) {
        return 0;
    }
    return v > (float)RLB_LAST_STATE ? RLB_LAST_STATE : (int32_t)v;
}
#endif
