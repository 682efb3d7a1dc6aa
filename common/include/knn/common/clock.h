#ifndef KNN_COMMON_CLOCK_H
#define KNN_COMMON_CLOCK_H

#include <stdint.h>

/** Monotonic time in nanoseconds (for durations, rates and deadlines). */
uint64_t knn_clock_monotonic_ns(void);
/** Wall-clock time in seconds since the Unix epoch, UTC (for signatures, log lines). */
int64_t knn_clock_wall_s(void);
/** Seconds between two monotonic readings, as a double. */
double knn_clock_seconds_since(uint64_t start_ns);

#endif
