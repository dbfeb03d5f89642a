// collm serve: the HTTP JSON service (include/collm/serve.h) until SIGINT /
// SIGTERM, which stop it cleanly (running requests finish, memory is freed,
// exit status 0).
//   collm serve --ckpt C.gguf --index items.faiss --data DIR --port 8080 [--host 127.0.0.1] [--contexts 2]
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "collm/error.h"
#include "collm/serve.h"
#include "collm/threadpool.h"
#include "commands.h"
#include "rec_setup.h"

// Self-pipe: the handler writes one byte, main blocks reading it.
static int serve_signal_pipe[2] = {-1, -1};

static void serve_on_signal(int sig) {
    (void)sig;
    int saved = errno;
    char c = 1;
    if (write(serve_signal_pipe[1], &c, 1) < 0) { /* nothing to do in a handler */ }
    errno = saved;
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
        CLI_COMMON_OPTIONS,
        {NULL, NULL, NULL, NULL},
    };
    int p = cli_parse(argc, argv, opts,
                      "usage: collm serve --ckpt FILE --index FILE --data DIR [--port 8080] [--host 127.0.0.1] "
                      "[--contexts 2] [--threads N]");
    if (p) return p > 0 ? 0 : 1;
    const char *ckpt, *index_path, *data;
    if (cli_require(opts, "--ckpt", &ckpt) || cli_require(opts, "--index", &index_path) ||
        cli_require(opts, "--data", &data))
        return 1;
    collm_serve_options so;
    collm_serve_options_default(&so);
    int64_t port, contexts, max_body;
    if (cli_get_int(opts, "--port", so.port, &port) || cli_get_int(opts, "--contexts", so.n_contexts, &contexts) ||
        cli_get_int(opts, "--max-body", (int64_t)so.max_body, &max_body))
        return 1;
    if (port < 0 || port > 65535 || contexts < 1 || contexts > 256 || max_body < 2 || max_body > (1 << 26)) {
        fprintf(stderr, "collm serve: out-of-range option (need 0 <= port <= 65535, 1 <= contexts <= 256)\n");
        return 1;
    }
    so.port = (int)port;
    so.n_contexts = (int)contexts;
    so.max_body = (size_t)max_body;
    if (cli_get(opts, "--host")) so.host = cli_get(opts, "--host");
    // concurrent requests each run BLAS: one BLAS thread per request keeps the cores from oversubscribing
    int threads = cli_threads(opts);
    cli_rec_setup s;
    if (cli_rec_setup_load(&s, "serve", ckpt, cli_get(opts, "--base"), index_path, data, threads)) return 1;
    collm_blas_set_threads(1);
    if (pipe(serve_signal_pipe) != 0) {
        fprintf(stderr, "collm serve: pipe: %s\n", strerror(errno));
        cli_rec_setup_free(&s);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = serve_on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    collm_serve_server *srv = collm_serve_start(s.model, s.index, s.ds->items, s.hist, &so);
    int status = 0;
    if (!srv) {
        status = cli_fail("serve");
    } else {
        fprintf(stderr, "serving on http://%s:%d (%d contexts); SIGINT/SIGTERM stops\n", so.host, collm_serve_port(srv),
                so.n_contexts);
        fflush(stderr);
        char c;
        while (read(serve_signal_pipe[0], &c, 1) < 0 && errno == EINTR) {
        }
        fprintf(stderr, "serve: stopping\n");
        collm_serve_stop(srv);
    }
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    close(serve_signal_pipe[0]);
    close(serve_signal_pipe[1]);
    serve_signal_pipe[0] = serve_signal_pipe[1] = -1;
    cli_rec_setup_free(&s);
    return status;
}
