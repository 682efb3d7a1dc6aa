#ifndef KNN_RUNNER_BUILD_INFO_H
#define KNN_RUNNER_BUILD_INFO_H
/*
 * What `knn-runner --version` prints: the version, the git commit the binary was built from
 * ("unknown" outside a git checkout) and the features compiled in (BLAS library and threading, and
 * whatever else registers itself in the feature table of build_info.c).
 */
#include <stdio.h>

/** Print the version block to out. Never fails (a feature that cannot describe itself says so). */
void knn_build_info_print(FILE *out);

/** The version alone, e.g. "0.1.0". */
const char *knn_build_info_version(void);

#endif
