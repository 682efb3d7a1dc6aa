/*
 * Fuzz target: the AWS shared config and credentials files. The input, split at its first NUL,
 * becomes the config file and the credentials file; the region and the static credentials of the
 * profiles "default" and "dev" are read from them. Inputs naming credential_process are skipped:
 * a fuzzer must never make us run a command.
 * Checks besides no crash/leak: a failure has a message; credentials read have both keys.
 */
#include "fuzz_util.h"

#include "knn/common/alloc.h"
#include "knn/common/error.h"
#include "knn/s3/credentials.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void s_check(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_aws_config: property broken: %s (last error: %s)\n", what, knn_error_message());
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *base = knn_fuzz_scratch();
    const uint8_t *parts[2];
    size_t lens[2];
    char config[1024], creds[1024];
    if (!base || size > (1u << 20))
        return 0;
    for (size_t i = 0; i + 18 <= size; i++) /* keys may be matched in any case */
        if (strncasecmp((const char *)data + i, "credential_process", 18) == 0)
            return 0;
    knn_fuzz_split(data, size, 2, parts, lens);
    if (knn_fuzz_write(base, "config", parts[0], lens[0]) != 0 ||
        knn_fuzz_write(base, "credentials", parts[1], lens[1]) != 0)
        return 0;
    snprintf(config, sizeof(config), "%s/config", base);
    snprintf(creds, sizeof(creds), "%s/credentials", base);
    static const char *const profiles[2] = {"default", "dev"};
    for (int i = 0; i < 2; i++) {
        struct knn_s3_profile_options po = KNN_S3_PROFILE_OPTIONS_INIT;
        po.profile = profiles[i];
        po.config_file = config;
        po.credentials_file = creds;
        char *region = NULL;
        int rc = knn_s3_profile_region(&region, &po);
        s_check(rc == 0 || knn_error_message()[0], "a failed region read has a message");
        knn_free(region);
        struct knn_s3_credentials_provider *p = NULL;
        if (knn_s3_credentials_provider_new_profile(&p, &po) != 0)
            continue;
        struct knn_s3_credentials c;
        memset(&c, 0, sizeof(c));
        rc = knn_s3_credentials_provider_get(&c, p);
        s_check(rc == 0 || knn_error_message()[0], "a failed credentials read has a message");
        if (rc == 0) {
            s_check(c.access_key_id && c.access_key_id[0] && c.secret_access_key && c.secret_access_key[0],
                    "credentials read have both keys");
            knn_s3_credentials_clean_up(&c);
        }
        knn_s3_credentials_provider_release(p);
    }
    return 0;
}
