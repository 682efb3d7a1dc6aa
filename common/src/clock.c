#include "knn/common/clock.h"

#include <time.h>

uint64_t knn_clock_monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int64_t knn_clock_wall_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

double knn_clock_seconds_since(uint64_t start_ns)
{
    return (double)(knn_clock_monotonic_ns() - start_ns) / 1e9;
}
