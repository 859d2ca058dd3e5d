/* rlbudget C runtime: the lookup of a packed greedy-action table.
 *
 * rlb_packed holds one RLB_BITS-bit action per entry, LSB first, plus one spare byte so
 * that reads stay inside. Parameters: RLB_BITS; RLB_SPARSE 1 when only some states have
 * an entry: rlb_stored holds 1 bit per state (it has an entry), rlb_rank[k] the entries
 * before state 64 k, and every other state acts RLB_DEFAULT_ACTION (constant time, a byte
 * popcount, no builtins).
 */
#ifndef RLB_API
#define RLB_API
#include "runtime.h"
#endif
#ifndef RLB_BITS
#define RLB_BITS 3
#endif
#ifndef RLB_SPARSE
#define RLB_SPARSE 1
#endif
#ifndef RLB_DEFAULT_ACTION
#define RLB_DEFAULT_ACTION 0
#endif

/* entry i of rlb_packed (RLB_BITS bits each, LSB first) */
RLB_API int rlb_packed_entry(int32_t i)
{
    const int32_t bit = i * RLB_BITS;
    const uint32_t word = (uint32_t)rlb_packed[bit >> 3]
                          | ((uint32_t)rlb_packed[(bit >> 3) + 1] << 8);
    return (int)((word >> (bit & 7)) & ((1u << RLB_BITS) - 1u));
}
#if RLB_SPARSE

/* set bits of one byte (SWAR, no builtins) */
RLB_API int32_t rlb_popcount8(uint32_t v)
{
    v = v - ((v >> 1) & 0x55u);
    v = (v & 0x33u) + ((v >> 2) & 0x33u);
    return (int32_t)((v + (v >> 4)) & 0x0fu);
}

/* a stored state's entry is its rank: rlb_rank[s / 64] plus the set bits before it in its
   block (at most 8 bitmap bytes); any other state acts the default */
RLB_API int rlb_sparse_action(int32_t s)
{
    const uint32_t byte = rlb_stored[s >> 3];
    int32_t k, r;
    if (!((byte >> (s & 7)) & 1u)) {
        return RLB_DEFAULT_ACTION;
    }
    r = (int32_t)rlb_rank[s >> 6];
    for (k = (s >> 6) << 3; k < (s >> 3); ++k) {
        r += rlb_popcount8(rlb_stored[k]);
    }
    r += rlb_popcount8(byte & ((1u << (s & 7)) - 1u));
    return rlb_packed_entry(r);
}
#endif
