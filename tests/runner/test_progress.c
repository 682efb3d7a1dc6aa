/* The progress display, not on a terminal: periodic log lines with bytes, rows and the total. */
#include "knn_test.h"

#include "progress.h"

#include "knn/common/log.h"

#include <pthread.h>
#include <unistd.h>

struct s_capture {
    pthread_mutex_t lock;
    char last[1024];
    int lines;
};

static void s_sink(void *user, enum knn_log_level level, const char *line)
{
    struct s_capture *c = user;
    pthread_mutex_lock(&c->lock);
    if (strstr(line, "train: ")) {
        snprintf(c->last, sizeof(c->last), "%s", line);
        c->lines++;
    }
    pthread_mutex_unlock(&c->lock);
}

int test_progress_log_lines(void)
{
    struct s_capture cap = {PTHREAD_MUTEX_INITIALIZER, "", 0};
    struct knn_progress_options opts = KNN_PROGRESS_OPTIONS_INIT;
    struct knn_progress *p;
    opts.interactive = 0;
    opts.log_interval_ms = 50;
    knn_log_set_sink(s_sink, &cap);
    ASSERT_OK(knn_progress_new(&p, &opts));
    ASSERT_FALSE(knn_progress_interactive(p));
    knn_progress_start_read(p, "train", 4 << 20);
    knn_progress_add(p, 1 << 20, 1000);
    knn_progress_add(p, 1 << 20, 500);
    /* Wait (not a timing assertion: up to 10 s) for the thread to log the state. */
    int seen = 0;
    for (int i = 0; i < 1000 && !seen; i++) {
        usleep(10000);
        pthread_mutex_lock(&cap.lock);
        seen = cap.lines > 0;
        pthread_mutex_unlock(&cap.lock);
    }
    knn_progress_end(p);
    knn_progress_destroy(p);
    knn_log_set_sink(NULL, NULL);
    ASSERT_TRUE(seen);
    ASSERT_CONTAINS(cap.last, "train: 2.0 MiB of 4.0 MiB (50%), 1500 rows");
    ASSERT_CONTAINS(cap.last, "/s, ETA ");
    return 0;
}
