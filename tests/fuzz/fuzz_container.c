/*
 * Fuzz target: the /opt/ml training-container contract. The input, split at NUL bytes, becomes
 * input/config/hyperparameters.json, inputdataconfig.json and resourceconfig.json under a scratch
 * SAGEMAKER_BASE_DIR (with input/data/train present), read by knn_job_config_from_container.
 * Checks besides no crash/leak: a refused configuration has a message.
 */
#include "fuzz_util.h"
#include "train/job_config.h"

#include "knn/common/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[3] = {"hyperparameters.json", "inputdataconfig.json", "resourceconfig.json"};
    const char *base = knn_fuzz_scratch();
    char config[1024];
    const uint8_t *parts[3];
    size_t lens[3];
    if (!base || size > (1u << 20))
        return 0;
    snprintf(config, sizeof(config), "%s/input/config", base);
    knn_fuzz_empty(base);
    static const char *const dirs[4] = {"input", "input/config", "input/data", "input/data/train"};
    for (int i = 0; i < 4; i++) {
        char d[1024];
        snprintf(d, sizeof(d), "%s/%s", base, dirs[i]);
        mkdir(d, 0755);
    }
    knn_fuzz_split(data, size, 3, parts, lens);
    for (int i = 0; i < 3; i++)
        if (knn_fuzz_write(config, names[i], parts[i], lens[i]) != 0)
            return 0;
    struct knn_job_config cfg;
    knn_job_config_init(&cfg);
    int rc = knn_job_config_from_container(&cfg, base);
    if (rc != 0 && !knn_error_message()[0]) {
        fprintf(stderr, "fuzz_container: a refused configuration has no message\n");
        abort();
    }
    knn_job_config_clean_up(&cfg);
    return 0;
}
