#ifndef KNN_COMMON_FILE_H
#define KNN_COMMON_FILE_H

/**
 * Writing an output file so that a failure never leaves a partial one: the bytes go to a temporary
 * file beside the target (a unique name, made with mkstemp), and commit renames it into place.
 *
 * Targets that are not regular files are written in place instead, never replaced: "-" is standard
 * output, and an existing device or FIFO (/dev/null, a pipe) is opened and written into. For those,
 * a failure cannot take back what was already written.
 *
 * Missing parent folders are not created. Not thread-safe: one owner per writer.
 */

#include <stddef.h>

struct knn_file_writer {
    int fd;
    char *path;     /* the target */
    char *tmp_path; /* the temporary file, or NULL when writing in place */
};

/** Open a writer for `path`. On failure nothing is left on disk and `w` needs no clean-up. */
int knn_file_writer_open(struct knn_file_writer *w, const char *path);
/** Write all `len` bytes (retrying short writes and EINTR). */
int knn_file_writer_write(struct knn_file_writer *w, const void *data, size_t len);
/**
 * Flush to disk and rename the temporary file into place. Releases the writer whatever the
 * outcome; on failure the temporary file is removed and the target is untouched.
 */
int knn_file_writer_commit(struct knn_file_writer *w);
/** Drop what was written (the temporary file is removed) and release the writer. Safe to call twice. */
void knn_file_writer_abort(struct knn_file_writer *w);

#endif
