/* Channel object lists: local listing, sorting, and the split among simulated hosts. */
#include "train/channels.h"

#include "knn/common/alloc.h"
#include "knn/common/buf.h"
#include "knn/common/error.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* A directory tree deeper than this is a loop or a mistake. */
#define S_MAX_DEPTH 64

void knn_object_list_init(struct knn_object_list *list)
{
    memset(list, 0, sizeof(*list));
}

void knn_object_list_clean_up(struct knn_object_list *list)
{
    for (size_t i = 0; i < list->count; i++) {
        knn_free(list->items[i].uri);
        knn_free(list->items[i].etag);
    }
    knn_free(list->items);
    knn_object_list_init(list);
}

int knn_object_list_add(struct knn_object_list *list, const char *uri, uint64_t size)
{
    return knn_object_list_add_etag(list, uri, size, NULL);
}

int knn_object_list_add_etag(struct knn_object_list *list, const char *uri, uint64_t size, const char *etag)
{
    if (list->count == list->cap) {
        size_t cap = list->cap ? list->cap * 2 : 16;
        struct knn_object *items = knn_realloc_array(list->items, cap, sizeof(*items));
        if (!items)
            return KNN_ENOMEM;
        list->items = items;
        list->cap = cap;
    }
    char *copy = knn_strdup(uri), *etag_copy = etag ? knn_strdup(etag) : NULL;
    if (!copy || (etag && !etag_copy)) {
        knn_free(copy);
        knn_free(etag_copy);
        return KNN_ENOMEM;
    }
    list->items[list->count].uri = copy;
    list->items[list->count].size = size;
    list->items[list->count].etag = etag_copy;
    list->count++;
    if (size != KNN_OBJECT_SIZE_UNKNOWN)
        list->total_bytes += size;
    return 0;
}

static int s_compare(const void *a, const void *b)
{
    return strcmp(((const struct knn_object *)a)->uri, ((const struct knn_object *)b)->uri);
}

void knn_object_list_sort(struct knn_object_list *list)
{
    if (list->count > 1)
        qsort(list->items, list->count, sizeof(list->items[0]), s_compare);
}

const char *knn_file_uri_path(const char *uri)
{
    return strncmp(uri, "file://", 7) == 0 ? uri + 7 : NULL;
}

static int s_walk(struct knn_object_list *out, struct knn_buf *path, int depth)
{
    DIR *dir;
    struct dirent *ent;
    int rc = 0;

    if (depth > S_MAX_DEPTH)
        return knn_error_set(KNN_EIO, "%s: directories nested more than %d deep", (char *)path->data, S_MAX_DEPTH);
    if (!(dir = opendir((char *)path->data)))
        return knn_error_set(KNN_EIO, "%s: %s", (char *)path->data, strerror(errno));
    size_t base_len = path->len;
    for (;;) {
        errno = 0;
        if (!(ent = readdir(dir))) {
            if (errno)
                rc = knn_error_set(KNN_EIO, "%s: %s", (char *)path->data, strerror(errno));
            break;
        }
        if (strcmp(ent->d_name, ".") == 0 || strcmp(ent->d_name, "..") == 0)
            continue;
        path->len = base_len;
        path->data[base_len] = '\0';
        if ((rc = knn_buf_printf(path, "/%s", ent->d_name)) < 0)
            break;
        struct stat st;
        if (stat((char *)path->data, &st) != 0) {
            rc = knn_error_set(KNN_EIO, "%s: %s", (char *)path->data, strerror(errno));
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            struct stat lst;
            if (lstat((char *)path->data, &lst) == 0 && S_ISLNK(lst.st_mode))
                continue; /* no loops through links */
            if ((rc = s_walk(out, path, depth + 1)) < 0)
                break;
        } else if (S_ISREG(st.st_mode)) {
            if ((rc = knn_object_list_add(out, (char *)path->data, (uint64_t)st.st_size)) < 0)
                break;
        }
    }
    closedir(dir);
    path->len = base_len;
    path->data[base_len] = '\0';
    return rc;
}

int knn_channel_list_local(struct knn_object_list *out, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return knn_error_set(errno == ENOENT ? KNN_ENOTFOUND : KNN_EIO, "%s: %s", path, strerror(errno));
    if (S_ISREG(st.st_mode))
        return knn_object_list_add(out, path, (uint64_t)st.st_size);
    if (S_ISFIFO(st.st_mode))
        return knn_object_list_add(out, path, KNN_OBJECT_SIZE_UNKNOWN);
    if (!S_ISDIR(st.st_mode))
        return knn_error_set(KNN_EIO, "%s: not a file or directory", path);

    struct knn_buf buf = KNN_BUF_INIT(64 * 1024);
    size_t len = strlen(path);
    while (len > 1 && path[len - 1] == '/')
        len--;
    int rc = knn_buf_append(&buf, path, len);
    if (rc == 0)
        rc = s_walk(out, &buf, 0);
    knn_buf_clean_up(&buf);
    if (rc == 0)
        knn_object_list_sort(out);
    return rc;
}

int knn_channel_host_reads(size_t index, size_t host, size_t hosts, int sharded)
{
    return !sharded || hosts <= 1 || index % hosts == host;
}

uint64_t knn_channel_host_sample_size(uint64_t sample_size, size_t host, size_t hosts)
{
    if (hosts <= 1)
        return sample_size;
    uint64_t share = sample_size / hosts, rest = sample_size % hosts;
    return share + (host < rest ? 1 : 0);
}
