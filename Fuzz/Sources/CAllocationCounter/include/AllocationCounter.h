// A counting allocator: interposes malloc and friends in the process that links it, and counts calls and live
// heap bytes (malloc_usable_size) with their peak. Used by the fuzz budget replay; usable by any benchmark.
#pragma once
#include <stddef.h>
#include <stdint.h>

/// Calls to malloc, calloc, realloc and the aligned allocators since the start.
uint64_t tripline_alloc_calls(void);
/// Heap bytes live now.
int64_t tripline_alloc_live(void);
/// The most heap bytes live at once since the last reset.
int64_t tripline_alloc_peak(void);
/// Starts a new peak from what is live now.
void tripline_alloc_reset_peak(void);
