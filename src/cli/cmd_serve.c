// collm serve: the HTTP JSON service (include/collm/serve.h, docs/api.md)
// until SIGINT / SIGTERM, which drain it: the listening socket closes at
// once, requests in progress finish (up to --drain seconds; a second signal
// cuts that short), memory is freed, exit status 0. SIGHUP reloads the
// checkpoint, index and dataset from the same paths (collm_serve_reload):
// requests in progress finish on the old ones, later ones use the new; a
// reload that fails (a damaged file) is reported and the old ones stay.
//   collm serve --ckpt C.gguf --index items.faiss --data DIR --port 8080 [--host 127.0.0.1] [--contexts 2]
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "collm/error.h"
#include "collm/serve.h"
#include "collm/threadpool.h"
#include "commands.h"
#include "rec_setup.h"

// Self-pipe: the handler writes one byte ('H' for SIGHUP, 'T' otherwise),
// main blocks reading it.
static int serve_signal_pipe[2] = {-1, -1};

static void serve_on_signal(int sig) {
    int saved = errno;
    char c = sig == SIGHUP ? 'H' : 'T';
    if (write(serve_signal_pipe[1], &c, 1) < 0) { /* nothing to do in a handler */ }
    errno = saved;
}

// A generation's parts (collm_serve_options.retire / collm_serve_reload).
static void retire_setup(void *owner) {
    cli_rec_setup *s = owner;
    cli_rec_setup_free(s);
    free(s);
}

// Blocks until a signal byte arrives; returns it.
static char wait_signal(void) {
    char c = 'T';
    while (read(serve_signal_pipe[0], &c, 1) < 0 && errno == EINTR) {
    }
    return c;
}

int cmd_serve(int argc, char **argv) {
    cli_option opts[] = {
        {"--ckpt", "FILE", "CoLLM checkpoint (stage 2, with CF vectors)", NULL},
        {"--base", "FILE", "base model (default: the path stored in the checkpoint)", NULL},
        {"--index", "FILE", "Faiss index over the checkpoint's item vectors", NULL},
        {"--data", "DIR", "dataset folder (items and the users' histories)", NULL},
        {"--port", "N", "TCP port (default 8080; 0 = any free port, printed at start)", NULL},
        {"--host", "ADDR", "IPv4 address to bind (default 127.0.0.1, loopback only)", NULL},
        {"--contexts", "N", "inference contexts = requests scored at once (default 2)", NULL},
        {"--max-body", "BYTES", "largest request body (default 65536; larger → 413)", NULL},
        {"--max-connections", "N", "open connections at once (default 512)", NULL},
        {"--per-ip-limit", "N", "open connections from one address (default 64; 0 = no limit)", NULL},
        {"--timeout", "S", "close a connection idle for S seconds (default 30)", NULL},
        {"--context-wait", "MS", "longest wait for a free context before 503 + Retry-After (default 1000)", NULL},
        {"--drain", "S", "on SIGTERM/SIGINT, longest wait for requests in progress (default 30)", NULL},
        {"--max-batch", "N", "most users in one batch request {\"users\": [...]} (default 64)", NULL},
        {"--access-log", "FILE", "one line per request: - = stderr (default), off = none, else appended to FILE", NULL},
        {"--prefix-cache-mb", "MB", "memory of the per-user prompt-prefix K/V cache (default 64; 0 = none)", NULL},
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts,
                      "usage: collm serve --ckpt FILE --index FILE --data DIR [--port 8080] [--host 127.0.0.1] "
                      "[--contexts 2] [--max-connections 512] [--per-ip-limit 64] [--timeout 30] [--context-wait 1000] "
                      "[--prefix-cache-mb 64] [--threads N]");
    if (p) return p > 0 ? 0 : 1;
    const char *ckpt, *index_path, *data;
    if (cli_require(opts, "--ckpt", &ckpt) || cli_require(opts, "--index", &index_path) ||
        cli_require(opts, "--data", &data))
        return 1;
    collm_serve_options so;
    collm_serve_options_default(&so);
    // name, value, lowest, highest: every option is checked before the model is loaded
    struct {
        const char *name;
        int64_t def, lo, hi, v;
    } iv[] = {
        {"--port", so.port, 0, 65535, 0},
        {"--contexts", so.n_contexts, 1, 256, 0},
        {"--max-body", (int64_t)so.max_body, 2, 1 << 26, 0},
        {"--max-connections", so.max_connections, 1, 65536, 0},
        {"--per-ip-limit", so.per_ip_limit, 0, 65536, 0},
        {"--timeout", so.timeout_s, 1, 86400, 0},
        {"--context-wait", so.context_wait_ms, 0, 600000, 0},
        {"--drain", so.drain_timeout_s, 0, 3600, 0},
        {"--max-batch", so.max_batch, 1, 100000, 0},
        {"--prefix-cache-mb", so.prefix_cache_bytes >> 20, 0, 1 << 20, 0},
    };
    for (size_t i = 0; i < sizeof iv / sizeof iv[0]; i++) {
        if (cli_get_int(opts, iv[i].name, iv[i].def, &iv[i].v)) return 1;
        if (iv[i].v < iv[i].lo || iv[i].v > iv[i].hi) {
            fprintf(stderr, "collm serve: %s %lld is out of range [%lld, %lld]\n", iv[i].name, (long long)iv[i].v,
                    (long long)iv[i].lo, (long long)iv[i].hi);
            return 1;
        }
    }
    so.port = (int)iv[0].v;
    so.n_contexts = (int)iv[1].v;
    so.max_body = (size_t)iv[2].v;
    so.max_connections = (int)iv[3].v;
    so.per_ip_limit = (int)iv[4].v;
    so.timeout_s = (int)iv[5].v;
    so.context_wait_ms = (int)iv[6].v;
    so.drain_timeout_s = (int)iv[7].v;
    so.max_batch = (int)iv[8].v;
    so.prefix_cache_bytes = iv[9].v << 20;
    const char *log_path = cli_get(opts, "--access-log");
    FILE *log_file = NULL;
    if (!log_path || strcmp(log_path, "-") == 0) {
        so.access_log = stderr;
    } else if (strcmp(log_path, "off") != 0) {
        if (!(log_file = fopen(log_path, "a"))) {
            fprintf(stderr, "collm serve: --access-log %s: cannot open: %s\n", log_path, strerror(errno));
            return 1;
        }
        so.access_log = log_file;
    }
    if (so.per_ip_limit > so.max_connections) {
        fprintf(stderr, "collm serve: --per-ip-limit %d exceeds --max-connections %d\n", so.per_ip_limit,
                so.max_connections);
        return 1;
    }
    if (cli_get(opts, "--host")) so.host = cli_get(opts, "--host");
    struct in_addr probe;
    if (inet_pton(AF_INET, so.host, &probe) != 1) {
        fprintf(stderr, "collm serve: --host %s is not an IPv4 address\n", so.host);
        return 1;
    }
    // concurrent requests each run BLAS: one BLAS thread per request keeps the cores from oversubscribing
    int threads = cli_threads(opts);
    cli_rec_setup *s = calloc(1, sizeof *s);
    if (!s || cli_rec_setup_load(s, "serve", ckpt, cli_get(opts, "--base"), index_path, data, threads)) {
        free(s);
        if (log_file) fclose(log_file);
        return 1;
    }
    collm_blas_set_threads(1);
    if (pipe(serve_signal_pipe) != 0) {
        fprintf(stderr, "collm serve: pipe: %s\n", strerror(errno));
        retire_setup(s);
        if (log_file) fclose(log_file);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = serve_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    so.retire = retire_setup; // the server frees the first generation when a reload replaces it
    so.owner = s;
    collm_serve_server *srv = collm_serve_start(s->model, s->index, s->ds->items, s->hist, &so);
    int status = 0;
    if (!srv) {
        status = cli_fail("serve");
        retire_setup(s);
    } else {
        fprintf(stderr, "serving on http://%s:%d (%d contexts); SIGHUP reloads, SIGINT/SIGTERM stops\n", so.host,
                collm_serve_port(srv), so.n_contexts);
        fflush(stderr);
        while (wait_signal() == 'H') {
            // reload from the same paths; threads 0: leave the BLAS / Faiss settings of running requests alone
            cli_rec_setup *next = calloc(1, sizeof *next);
            if (next && !cli_rec_setup_load(next, "serve (reload)", ckpt, cli_get(opts, "--base"), index_path, data, 0) &&
                collm_serve_reload(srv, next->model, next->index, next->ds->items, next->hist, retire_setup, next) ==
                    COLLM_OK) {
                fprintf(stderr, "serve: reloaded %s and %s (generation %d)\n", ckpt, index_path,
                        collm_serve_generation(srv));
            } else {
                if (next && next->model) cli_fail("serve (reload)"); // loaded, but the server could not take it
                if (next) cli_rec_setup_free(next);
                free(next);
                fprintf(stderr, "serve: reload failed; still serving generation %d\n", collm_serve_generation(srv));
            }
            fflush(stderr);
        }
        // drain in slices so that a second signal can cut it short
        fprintf(stderr, "serve: stopping (draining requests in progress, up to %d s)\n", so.drain_timeout_s);
        fflush(stderr);
        int left = 0;
        for (int waited = 0;; waited += 100) {
            left = collm_serve_drain(srv, 100);
            if (left == 0 || waited >= so.drain_timeout_s * 1000) break;
            // a second SIGINT / SIGTERM cuts the drain short; a SIGHUP now
            // (a reload asked for too late) is read and ignored
            struct pollfd pfd = {serve_signal_pipe[0], POLLIN, 0};
            char c = 0;
            while (c != 'T' && poll(&pfd, 1, 0) > 0 && read(serve_signal_pipe[0], &c, 1) == 1) {
            }
            if (c == 'T') break;
        }
        if (left) fprintf(stderr, "serve: %d requests still in progress are cut off\n", left);
        collm_serve_stop(srv);
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGHUP, SIG_DFL);
    close(serve_signal_pipe[0]);
    close(serve_signal_pipe[1]);
    serve_signal_pipe[0] = serve_signal_pipe[1] = -1;
    if (log_file) fclose(log_file);
    return status;
}
