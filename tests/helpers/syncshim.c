/* LD_PRELOAD shim for the recovery tests (tests/recovery_support.py compiles it with cc).
 *
 * Power loss (SHIM_DIR and SHIM_SHADOW set): after every successful fsync/fdatasync of a file
 * in SHIM_DIR, a copy of the file as it is then goes to SHIM_SHADOW/<name>; after an fsync of
 * SHIM_DIR itself, the list of names in it goes to SHIM_SHADOW/.names. What the shadow holds is
 * what a power cut would leave: only synced names, each with its last synced content.
 *
 * Faults (SHIM_FAULT_SUFFIX, SHIM_FAULT_ERRNO and SHIM_FAULT_TRIGGER set): while the file
 * SHIM_FAULT_TRIGGER exists, pwrite/write/pread/read/fsync/fdatasync on a file whose path ends
 * in SHIM_FAULT_SUFFIX fail with errno SHIM_FAULT_ERRNO (5 EIO, 28 ENOSPC); SHIM_FAULT_OPS
 * ("write", "pread", "rawread" or "sync", comma-separated) picks which calls.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pread)(int, void *, size_t, off_t);
static ssize_t (*real_read)(int, void *, size_t);

static void init(void) {
    if (!real_fsync) {
        real_fsync = dlsym(RTLD_NEXT, "fsync");
        real_fdatasync = dlsym(RTLD_NEXT, "fdatasync");
        real_pwrite = dlsym(RTLD_NEXT, "pwrite");
        real_write = dlsym(RTLD_NEXT, "write");
        real_pread = dlsym(RTLD_NEXT, "pread");
        real_read = dlsym(RTLD_NEXT, "read");
    }
}

static int fd_path(int fd, char *out, size_t size) {
    char link[64];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, size - 1);
    if (n < 0) return -1;
    out[n] = 0;
    return 0;
}

static int faulty(int fd, const char *op) {
    const char *suffix = getenv("SHIM_FAULT_SUFFIX");
    const char *trigger = getenv("SHIM_FAULT_TRIGGER");
    const char *ops = getenv("SHIM_FAULT_OPS");
    if (!suffix || !trigger || (ops && !strstr(ops, op))) return 0;
    char path[PATH_MAX];
    if (fd_path(fd, path, sizeof path) < 0) return 0;
    size_t lp = strlen(path), ls = strlen(suffix);
    if (lp < ls || strcmp(path + lp - ls, suffix) != 0) return 0;
    if (access(trigger, F_OK) != 0) return 0;
    errno = atoi(getenv("SHIM_FAULT_ERRNO") ? getenv("SHIM_FAULT_ERRNO") : "5");
    return 1;
}

static void copy_file(const char *from, const char *to) {
    char temp[PATH_MAX];
    snprintf(temp, sizeof temp, "%s.shim-tmp", to);
    int in = open(from, O_RDONLY);
    if (in < 0) return;
    int out = open(temp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (out < 0) { close(in); return; }
    char buf[65536];
    ssize_t n;
    while ((n = real_read(in, buf, sizeof buf)) > 0) real_write(out, buf, n);
    close(in);
    close(out);
    rename(temp, to);
}

static void snapshot(int fd) {
    const char *dir = getenv("SHIM_DIR");
    const char *shadow = getenv("SHIM_SHADOW");
    if (!dir || !shadow) return;
    char path[PATH_MAX], target[PATH_MAX];
    if (fd_path(fd, path, sizeof path) < 0) return;
    if (strcmp(path, dir) == 0) {
        snprintf(target, sizeof target, "%s/.names.shim-tmp", shadow);
        FILE *out = fopen(target, "w");
        if (!out) return;
        DIR *d = opendir(dir);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (e->d_name[0] != '.') fprintf(out, "%s\n", e->d_name);
        }
        if (d) closedir(d);
        fclose(out);
        char final[PATH_MAX];
        snprintf(final, sizeof final, "%s/.names", shadow);
        rename(target, final);
        return;
    }
    size_t ld = strlen(dir);
    if (strncmp(path, dir, ld) != 0 || path[ld] != '/' || strchr(path + ld + 1, '/')) return;
    snprintf(target, sizeof target, "%s/%s", shadow, path + ld + 1);
    copy_file(path, target);
}

int fsync(int fd) {
    init();
    if (faulty(fd, "sync")) return -1;
    int rc = real_fsync(fd);
    if (rc == 0) snapshot(fd);
    return rc;
}

int fdatasync(int fd) {
    init();
    if (faulty(fd, "sync")) return -1;
    int rc = real_fdatasync(fd);
    if (rc == 0) snapshot(fd);
    return rc;
}

ssize_t pwrite(int fd, const void *buf, size_t n, off_t offset) {
    init();
    if (faulty(fd, "write")) return -1;
    return real_pwrite(fd, buf, n, offset);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off_t offset) { return pwrite(fd, buf, n, offset); }

ssize_t write(int fd, const void *buf, size_t n) {
    init();
    if (fd > 2 && faulty(fd, "write")) return -1;
    return real_write(fd, buf, n);
}

ssize_t pread(int fd, void *buf, size_t n, off_t offset) {
    init();
    if (faulty(fd, "pread")) return -1;
    return real_pread(fd, buf, n, offset);
}

ssize_t pread64(int fd, void *buf, size_t n, off_t offset) { return pread(fd, buf, n, offset); }

ssize_t read(int fd, void *buf, size_t n) {
    init();
    if (fd > 2 && faulty(fd, "rawread")) return -1;
    return real_read(fd, buf, n);
}
