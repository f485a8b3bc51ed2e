// A software prefetch for Swift, which has no intrinsic for it: the index probes of a batch of records are issued
// before any is awaited (issue 17), so their cache misses overlap instead of queueing one after another.
#pragma once

static inline void tripline_prefetch(const void *p) { __builtin_prefetch(p, 0, 3); }
