/* rlbudget C runtime: rlb_input(obs, i), observation element i after the float preprocess.
 *
 * Parameters: RLB_NORMALIZE 1 for VecNormalize's (x - mean) / sqrt(var + eps) clipped to
 * +-RLB_CLIP (a float constant; mean and sqrt(var + eps) are the model arrays
 * rlb_norm_mean and rlb_norm_std), 0 for the observation as it is; RLB_UNCLIPPED 1 leaves
 * the clip out, where the int8 input quantization saturates before it (the export checks).
 */
#ifndef RLB_API
#define RLB_API
#include "runtime.h"
#endif
#ifndef RLB_NORMALIZE
#define RLB_NORMALIZE 1
#endif
#ifndef RLB_CLIP
#define RLB_CLIP 10.0f
#endif
#ifndef RLB_UNCLIPPED
#define RLB_UNCLIPPED 0
#endif

#if RLB_NORMALIZE && RLB_UNCLIPPED
/* normalize: (x - mean) / sqrt(var + eps); its clip is left to the int8 quantization,
   which saturates first */
RLB_API float rlb_input(const float *obs, int32_t i)
{
    return (obs[i] - rlb_norm_mean[i]) / rlb_norm_std[i];
}
#elif RLB_NORMALIZE
/* normalize: clip((x - mean) / sqrt(var + eps), +-RLB_CLIP) */
RLB_API float rlb_input(const float *obs, int32_t i)
{
    float z = (obs[i] - rlb_norm_mean[i]) / rlb_norm_std[i];
    if (z < -RLB_CLIP) {
        z = -RLB_CLIP;
    }
    if (z > RLB_CLIP) {
        z = RLB_CLIP;
    }
    return z;
}
#else
RLB_API float rlb_input(const float *obs, int32_t i)
{
    return obs[i];
}
#endif
