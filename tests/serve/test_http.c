/*
 * The HTTP layer's concurrency (runner/src/serve/serve_http.c), with routes of the test's own and
 * libcurl clients on loopback:
 * - two requests on two connections run side by side (a thread pool of event loops once put both
 *   connections on one thread, leaving a core idle);
 * - routes marked `limited` run at most `threads` at a time, and the others (/ping) answer while
 *   every slot is busy.
 * Waits are bounded (10 s), so a broken server fails the test instead of hanging it.
 */
#include "knn_test.h"

#include "serve/serve_http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <time.h>

struct s_state {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int entered;    /* handlers of /block entered so far */
    int inside;     /* handlers of /block running now */
    int max_inside; /* the most seen at once */
    int release;    /* /block handlers may return */
    int wait_for;   /* a /block handler waits until this many have entered (0: until `release`) */
    int timed_out;  /* a handler gave up waiting */
};

static void s_deadline(struct timespec *ts, int seconds)
{
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += seconds;
}

static void s_block(void *ctx, const struct knn_http_request *req, struct knn_http_response *resp)
{
    (void)req;
    struct s_state *s = ctx;
    struct timespec until;
    s_deadline(&until, 10);
    pthread_mutex_lock(&s->lock);
    s->entered++;
    if (++s->inside > s->max_inside)
        s->max_inside = s->inside;
    pthread_cond_broadcast(&s->cond);
    int rc = 0;
    while (rc == 0 && (s->wait_for ? s->entered < s->wait_for : !s->release))
        rc = pthread_cond_timedwait(&s->cond, &s->lock, &until);
    if (rc)
        s->timed_out = 1;
    s->inside--;
    pthread_mutex_unlock(&s->lock);
    knn_buf_append_str(&resp->body, "{}");
}

static void s_ping(void *ctx, const struct knn_http_request *req, struct knn_http_response *resp)
{
    (void)ctx;
    (void)req;
    knn_buf_append_str(&resp->body, "{}");
}

static const struct knn_http_route s_routes[] = {
    {"POST", "/block", s_block, 1, NULL},
    {"GET", "/ping", s_ping, 0, NULL},
};

static size_t s_discard(char *p, size_t size, size_t n, void *user)
{
    (void)p;
    (void)user;
    return size * n;
}

struct s_client {
    uint16_t port;
    const char *path;
    int post;
    long status; /* 0 if the request failed */
};

static void *s_request(void *arg)
{
    struct s_client *c = arg;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", c->port, c->path);
    CURL *h = curl_easy_init();
    if (!h)
        return NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, s_discard);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    if (c->post)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "x");
    if (curl_easy_perform(h) == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &c->status);
    curl_easy_cleanup(h);
    return NULL;
}

static int s_start(struct knn_http_server **server, struct s_state *s, size_t threads)
{
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    struct knn_http_server_options o = KNN_HTTP_SERVER_OPTIONS_INIT;
    o.host = "127.0.0.1";
    o.port = 0;
    o.threads = threads;
    o.routes = s_routes;
    o.nroutes = sizeof(s_routes) / sizeof(s_routes[0]);
    o.ctx = s;
    return knn_http_server_start(server, &o);
}

int test_http_two_connections_run_side_by_side(void)
{
    struct s_state s = {.wait_for = 2};
    struct knn_http_server *server = NULL;
    ASSERT_OK(s_start(&server, &s, 2));
    uint16_t port = knn_http_server_port(server);
    struct s_client a = {port, "/block", 1, 0}, b = {port, "/block", 1, 0};
    pthread_t ta, tb;
    ASSERT_INT_EQ(0, pthread_create(&ta, NULL, s_request, &a));
    ASSERT_INT_EQ(0, pthread_create(&tb, NULL, s_request, &b));
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    knn_http_server_stop(server, 1000);
    /* Each handler waited for the other to start: both ran at once, neither gave up. */
    ASSERT_INT_EQ(0, s.timed_out);
    ASSERT_INT_EQ(2, s.max_inside);
    ASSERT_TRUE(a.status == 200 && b.status == 200);
    return 0;
}

int test_http_limited_routes_take_turns_ping_answers(void)
{
    struct s_state s = {0};
    struct knn_http_server *server = NULL;
    ASSERT_OK(s_start(&server, &s, 1));
    uint16_t port = knn_http_server_port(server);
    struct s_client a = {port, "/block", 1, 0}, b = {port, "/block", 1, 0}, ping = {port, "/ping", 0, 0};
    pthread_t ta, tb;
    ASSERT_INT_EQ(0, pthread_create(&ta, NULL, s_request, &a));
    /* Wait for the first request to hold the only slot, then send the second. */
    struct timespec until;
    s_deadline(&until, 10);
    pthread_mutex_lock(&s.lock);
    while (s.entered < 1 && pthread_cond_timedwait(&s.cond, &s.lock, &until) == 0)
        ;
    int first_in = s.entered;
    pthread_mutex_unlock(&s.lock);
    ASSERT_INT_EQ(0, pthread_create(&tb, NULL, s_request, &b));
    /* /ping is not limited: it answers while the slot is taken. */
    s_request(&ping);
    pthread_mutex_lock(&s.lock);
    int entered_during = s.entered;
    s.release = 1;
    pthread_cond_broadcast(&s.cond);
    pthread_mutex_unlock(&s.lock);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    knn_http_server_stop(server, 1000);
    ASSERT_INT_EQ(1, first_in);
    ASSERT_INT_EQ(200, ping.status);
    ASSERT_INT_EQ(1, entered_during); /* the second request did not start while the first held the slot */
    ASSERT_INT_EQ(0, s.timed_out);
    ASSERT_INT_EQ(1, s.max_inside);
    ASSERT_INT_EQ(2, s.entered);
    ASSERT_TRUE(a.status == 200 && b.status == 200);
    return 0;
}
