/* --endpoint-url, --region and --profile of serve and transform, for the S3 clients they make. */
#include "s3_settings.h"

#include "knn/s3/client.h"

static const char *s_endpoint_url, *s_region, *s_profile; /* set once at startup, read-only after */

void knn_s3_settings_set(const char *endpoint_url, const char *region, const char *profile)
{
    s_endpoint_url = endpoint_url;
    s_region = region;
    s_profile = profile;
}

void knn_s3_settings_apply(struct knn_s3_client_options *co, const char *uri_region)
{
    co->endpoint_url = s_endpoint_url;
    co->region = s_region ? s_region : uri_region;
    co->profile = s_profile;
}
