/* One-time initialization of libcurl and libxml2. */
#include "curl_init.h"

#include "knn/common/error.h"

#include <curl/curl.h>
#include <libxml/parser.h>
#include <pthread.h>

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static CURLcode s_result = CURLE_OK;

static void s_init(void)
{
    s_result = curl_global_init(CURL_GLOBAL_DEFAULT);
    xmlInitParser();
}

int knn__s3_curl_global_init(void)
{
    pthread_once(&s_once, s_init);
    if (s_result != CURLE_OK)
        return knn_error_set(KNN_EINTERNAL, "curl_global_init failed: %s", curl_easy_strerror(s_result));
    return 0;
}
