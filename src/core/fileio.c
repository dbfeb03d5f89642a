// File helpers (see include/collm/fileio.h).
#include "collm/fileio.h"

#include "collm/error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

int collm_map_file(const char *path, collm_mapped_file *out) {
    out->data = NULL;
    out->size = 0;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return collm_error(errno == ENOENT ? COLLM_ERR_NOT_FOUND : COLLM_ERR_IO, "%s: cannot open: %s", path,
                           strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return collm_error(COLLM_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return collm_error(COLLM_ERR_IO, "%s: not a regular file", path);
    }
    if (st.st_size > 0) {
        void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            close(fd);
            return collm_error(COLLM_ERR_IO, "%s: cannot mmap: %s", path, strerror(errno));
        }
        out->data = p;
        out->size = (size_t)st.st_size;
    }
    close(fd);
    return COLLM_OK;
}

void collm_unmap_file(collm_mapped_file *map) {
    if (map->data) munmap((void *)map->data, map->size);
    map->data = NULL;
    map->size = 0;
}

int collm_read_file(const char *path, char **out, size_t *size) {
    *out = NULL;
    if (size) *size = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        return collm_error(errno == ENOENT ? COLLM_ERR_NOT_FOUND : COLLM_ERR_IO, "%s: cannot open: %s", path,
                           strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        fclose(f);
        return collm_error(COLLM_ERR_NOMEM, "%s: out of memory", path);
    }
    for (;;) {
        if (len + 1 >= cap) {
            cap *= 2;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return collm_error(COLLM_ERR_NOMEM, "%s: out of memory", path);
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return collm_error(COLLM_ERR_IO, "%s: read error", path);
    }
    buf[len] = '\0';
    *out = buf;
    if (size) *size = len;
    return COLLM_OK;
}

int collm_fwrite_all(FILE *f, const void *data, size_t n) {
    if (n && fwrite(data, 1, n, f) != n) return collm_error(COLLM_ERR_IO, "write failed: %s", strerror(errno));
    return COLLM_OK;
}

static void fsync_parent_dir(const char *path) {
    char *copy = strdup(path);
    if (!copy) return;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(copy);
}

// The process umask without changing it (umask() sets it process-wide, racing
// with other threads): Linux reports it in /proc/self/status; 022 otherwise.
static mode_t current_umask(void) {
    mode_t mask = 022;
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return mask;
    char line[128];
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "Umask:", 6) == 0) {
            mask = (mode_t)strtoul(line + 6, NULL, 8);
            break;
        }
    fclose(f);
    return mask;
}

int collm_write_atomic(const char *path, collm_write_fn write_fn, void *ctx) {
    // "<path>.tmp.<pid>.XXXXXX" in the target folder (rename stays on one file
    // system): mkstemp picks an unpredictable name and opens it O_EXCL, so an
    // existing file or symlink there is never followed; the pid lets a later
    // run remove what a killed one left (collm_remove_stale_temps).
    size_t n = strlen(path) + 48;
    char *tmp = malloc(n);
    if (!tmp) return collm_error(COLLM_ERR_NOMEM, "out of memory");
    snprintf(tmp, n, "%s.tmp.%ld.XXXXXX", path, (long)getpid());
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int rc = collm_error(COLLM_ERR_IO, "%s: cannot create a temporary file there: %s", path, strerror(errno));
        free(tmp);
        return rc;
    }
    FILE *f = fdopen(fd, "wb");
    // mkstemp makes the file 0600; the result gets the mode a plain create would
    if (!f || fchmod(fd, 0666 & ~current_umask()) != 0) {
        int rc = collm_error(COLLM_ERR_IO, "%s: cannot open: %s", tmp, strerror(errno));
        if (f) fclose(f);
        else close(fd);
        unlink(tmp);
        free(tmp);
        return rc;
    }
    int rc = write_fn(f, ctx);
    if (rc == COLLM_OK && (fflush(f) != 0 || ferror(f)))
        rc = collm_error(COLLM_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
    if (rc == COLLM_OK && fsync(fileno(f)) != 0) rc = collm_error(COLLM_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
    if (fclose(f) != 0 && rc == COLLM_OK) rc = collm_error(COLLM_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
    if (rc == COLLM_OK && rename(tmp, path) != 0)
        rc = collm_error(COLLM_ERR_IO, "%s: cannot rename to %s: %s", tmp, path, strerror(errno));
    if (rc != COLLM_OK) unlink(tmp);
    else fsync_parent_dir(path);
    free(tmp);
    return rc;
}

int collm_remove_stale_temps(const char *path, int *n_removed) {
    if (n_removed) *n_removed = 0;
    char *dcopy = strdup(path), *bcopy = strdup(path);
    if (!dcopy || !bcopy) {
        free(dcopy), free(bcopy);
        return collm_error(COLLM_ERR_NOMEM, "out of memory");
    }
    const char *dir = dirname(dcopy), *base = basename(bcopy);
    size_t blen = strlen(base);
    DIR *d = opendir(dir);
    if (!d) {
        int rc = errno == ENOENT ? COLLM_OK : collm_error(COLLM_ERR_IO, "%s: cannot list: %s", dir, strerror(errno));
        free(dcopy), free(bcopy);
        return rc;
    }
    int rc = COLLM_OK;
    struct dirent *e;
    while ((e = readdir(d))) {
        // "<base>.tmp.<pid>" (older releases) or "<base>.tmp.<pid>.<6 chars>"
        const char *name = e->d_name;
        if (strncmp(name, base, blen) != 0 || strncmp(name + blen, ".tmp.", 5) != 0) continue;
        const char *p = name + blen + 5;
        char *end;
        errno = 0;
        long pid = strtol(p, &end, 10);
        if (errno || end == p || *p == '-' || *p == '+' || pid <= 0) continue;
        if (*end == '.' ? strlen(end + 1) != 6 : *end != '\0') continue;
        if (pid == (long)getpid() || kill((pid_t)pid, 0) == 0 || errno != ESRCH) continue; // its writer may still run
        size_t n = strlen(dir) + strlen(name) + 2;
        char *full = malloc(n);
        if (!full) {
            rc = collm_error(COLLM_ERR_NOMEM, "out of memory");
            break;
        }
        snprintf(full, n, "%s/%s", dir, name);
        if (unlink(full) == 0) {
            if (n_removed) (*n_removed)++;
        } else if (errno != ENOENT) {
            rc = collm_error(COLLM_ERR_IO, "%s: cannot remove a stale temporary file: %s", full, strerror(errno));
        }
        free(full);
        if (rc) break;
    }
    closedir(d);
    free(dcopy), free(bcopy);
    return rc;
}

int collm_mkdir_p(const char *path) {
    char *copy = strdup(path);
    if (!copy) return collm_error(COLLM_ERR_NOMEM, "out of memory");
    for (char *p = copy + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(copy, 0755) != 0 && errno != EEXIST) {
            int rc = collm_error(COLLM_ERR_IO, "%s: cannot create directory: %s", copy, strerror(errno));
            free(copy);
            return rc;
        }
        *p = '/';
    }
    int rc = COLLM_OK;
    if (mkdir(copy, 0755) != 0 && errno != EEXIST)
        rc = collm_error(COLLM_ERR_IO, "%s: cannot create directory: %s", copy, strerror(errno));
    free(copy);
    return rc;
}

int collm_check_output_path(const char *path) {
    if (!path || !*path) return collm_error(COLLM_ERR_ARG, "no output path");
    char *copy = strdup(path);
    if (!copy) return collm_error(COLLM_ERR_NOMEM, "out of memory");
    const char *dir = dirname(copy);
    struct stat st;
    int rc = COLLM_OK;
    if (stat(dir, &st) != 0)
        rc = collm_error(COLLM_ERR_IO, "%s: the output folder %s does not exist (%s)", path, dir, strerror(errno));
    else if (!S_ISDIR(st.st_mode))
        rc = collm_error(COLLM_ERR_IO, "%s: %s is not a folder", path, dir);
    else if (access(dir, W_OK | X_OK) != 0)
        rc = collm_error(COLLM_ERR_IO, "%s: the output folder %s is not writable (%s)", path, dir, strerror(errno));
    else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        rc = collm_error(COLLM_ERR_IO, "%s: is a folder, not a file", path);
    free(copy);
    return rc;
}
