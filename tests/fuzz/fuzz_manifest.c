/*
 * Fuzz target: a job manifest (CreateTrainingJob-shaped JSON, at most 1 MiB as the reader caps it)
 * through knn_job_config_from_manifest, then its HyperParameters through the validator and the
 * formatter; the same bytes also as a ManifestFile (S3DataType ManifestFile) and a ContentType.
 * Checks besides no crash/leak: a failure sets a message; validated hyperparameters format and
 * survive a second parse of their own JSON form unchanged (knn_hyperparams_to_json).
 */
#include "train/hyperparams.h"
#include "train/job_config.h"

#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_manifest: property broken: %s (last error: %s)\n", what, knn_error_message());
        abort();
    }
}

static void s_hyperparameters(const json_t *given)
{
    struct knn_hyperparams hp, again;
    knn_hyperparams_init(&hp);
    knn_hyperparams_init(&again);
    int rc = knn_hyperparams_parse(&hp, given);
    s_check(rc == 0 || knn_error_message()[0], "a failed validation has a message");
    if (rc == 0) {
        struct knn_buf a = KNN_BUF_INIT(1 << 20), b = KNN_BUF_INIT(1 << 20);
        s_check(knn_hyperparams_format(&hp, 0, &a) == 0, "valid hyperparameters format");
        json_t *j = knn_hyperparams_to_json(&hp);
        s_check(j != NULL, "valid hyperparameters have a JSON form");
        /* The JSON form is strings only (as SageMaker passes them): it must validate to the same. */
        s_check(knn_hyperparams_parse(&again, j) == 0, "the JSON form validates");
        s_check(knn_hyperparams_format(&again, 0, &b) == 0 && a.len == b.len && memcmp(a.data, b.data, a.len) == 0,
                "the JSON form validates to the same configuration");
        json_decref(j);
        knn_buf_clean_up(&a);
        knn_buf_clean_up(&b);
    }
    knn_hyperparams_clean_up(&again);
    knn_hyperparams_clean_up(&hp);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > (1u << 20))
        return 0;
    json_error_t err;
    json_t *root = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, &err);
    if (root) {
        struct knn_job_config cfg;
        knn_job_config_init(&cfg);
        int rc = knn_job_config_from_manifest(&cfg, root, "fuzz.json");
        s_check(rc == 0 || knn_error_message()[0], "a refused manifest has a message");
        if (rc == 0 && cfg.hyperparameters)
            s_hyperparameters(cfg.hyperparameters);
        knn_job_config_clean_up(&cfg);
        /* The input as the HyperParameters object itself. */
        if (json_is_object(root))
            s_hyperparameters(root);
        json_decref(root);
    }
    char **uris = NULL;
    size_t count = 0;
    if (knn_job_parse_data_manifest(&uris, &count, (const char *)data, size, "fuzz.manifest") == 0)
        knn_job_free_strings(uris, count);
    char *text = knn_malloc(size + 1);
    if (text) {
        memcpy(text, data, size);
        text[size] = '\0';
        struct knn_content_type ct;
        (void)knn_content_type_parse(&ct, text);
        knn_free(text);
    }
    return 0;
}
