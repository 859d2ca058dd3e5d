/* rlbudget C runtime: rlb_state(obs), the row of a table body.
 *
 * Parameters: RLB_DISCRETIZE 0 for a Discrete observation (obs[0] is the state, clamped
 * to 0..RLB_LAST_STATE), 1 for a uniform discretizer over RLB_DIMS dimensions of
 * rlb_input (its low, bins / (high - low) in float32 and bins are the model arrays
 * rlb_disc_low, rlb_disc_scale and rlb_disc_bins).
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
/* discretize: row-major index of clip(floor((x - low) * scale), 0, bins - 1), in float32
 * as numpy (rlbudget.policy.preprocess): one operation per statement, no divide, float only */
RLB_API int32_t rlb_state(const float *obs)
{
    int32_t d, k, state = 0;
    for (d = 0; d < RLB_DIMS; ++d) {
        const float v = rlb_input(obs, d) - rlb_disc_low[d];
        const float u = v * rlb_disc_scale[d];
        const int32_t last = rlb_disc_bins[d] - 1; /* < 2**24: exact as a float */
        k = !(u >= 0.0f) ? 0 /* clip(floor(u), 0, bins - 1); NaN: 0 */
            : (u >= (float)last ? last : (int32_t)u);
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
