#ifndef KNN_RUNNER_MODEL_ARCHIVE_H
#define KNN_RUNNER_MODEL_ARCHIVE_H

/**
 * model.tar.gz, as SageMaker writes and reads it (spec §5.6): a gzip-compressed tar whose members
 * are the files of /opt/ml/model at the top level (no leading directory).
 *
 * Packing writes regular files only, each under its base name, mode 0644, in the order given.
 *
 * Unpacking is for archives from outside (a user's S3 bucket), so it trusts nothing (libarchive
 * reads; we decide what is written):
 * - only tar formats (ustar, pax, gnu), gzip-compressed or not;
 * - only regular files and directories: symbolic and hard links, devices, FIFOs are refused;
 * - a member name that is absolute, contains "..", or is empty after a leading "./" is refused;
 * - files are created with O_EXCL | O_NOFOLLOW under the target directory (never overwriting,
 *   never following a link), mode 0644 (directories 0755), whatever the archive says;
 * - caps on the number of members, on one member's size and on the total (checked against the
 *   header before writing, and against the bytes actually written);
 * - on any error, the files written so far are removed again (the target directory stays).
 * Errors name the archive, the member and the problem: KNN_EFORMAT (not a tar/gzip, corrupt,
 * refused member), KNN_ETOOBIG (a cap), KNN_EEXISTS (two members with one name), KNN_EIO,
 * KNN_ENOTFOUND, KNN_ENOMEM. Thread-safe (no shared state).
 */

#include <stddef.h>
#include <stdint.h>

struct knn_archive_limits {
    size_t max_members;        /* files and directories */
    uint64_t max_member_bytes; /* one file */
    uint64_t max_total_bytes;  /* all files */
};

/* A model is three files; a big Flat index is a few GB. */
#define KNN_ARCHIVE_LIMITS_INIT {1000, (uint64_t)64 << 30, (uint64_t)64 << 30}

/**
 * Write `names` (files inside `dir`) into a new gzip-compressed tar at `tar_path`, each as a
 * top-level member. The archive is written to "<tar_path>.tmp" and renamed when complete, so a
 * failed pack leaves no partial file at `tar_path`.
 */
int knn_archive_pack(const char *tar_path, const char *dir, const char *const *names, size_t nnames);

/**
 * knn_archive_pack with a gzip level: 1..9 as zlib's, 0 for stored blocks (still gzip, readable by
 * every tar; ~1 GB/s where deflate manages ~20 MB/s on float32 index data and saves only ~7%),
 * -1 for zlib's default (what knn_archive_pack uses).
 */
int knn_archive_pack_level(const char *tar_path, const char *dir, const char *const *names, size_t nnames,
                           int gzip_level);

/**
 * Unpack `tar_path` into the existing directory `dir`, with the rules and caps above (NULL = defaults).
 * Each member must also fit in the file system's free space (keeping 64 MiB free): KNN_ETOOBIG.
 */
int knn_archive_unpack(const char *dir, const char *tar_path, const struct knn_archive_limits *limits);

/**
 * Unpack a model.tar.gz: knn_archive_unpack, verified against what its model_algo-1.json declares.
 * A first pass reads the archive (writing nothing) for model_algo-1.json (at most 1 MiB). When it
 * has "sha256" (our models), every file member must be one it names (or itself); a member whose
 * header size differs from its "bytes" is refused before a byte of it is written; its SHA-256 is
 * computed while it is written and a mismatch refuses the archive at that member's end; and the
 * total is capped by the declared sizes. So a lying archive is refused after writing at most its
 * declared size, and everything written is removed again. Without declarations (SageMaker's own
 * models), knn_archive_unpack's rules apply. Errors: those of knn_archive_unpack, KNN_ECHECKSUM.
 */
int knn_model_archive_unpack(const char *dir, const char *tar_path, const struct knn_archive_limits *limits);

#endif
