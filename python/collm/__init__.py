"""collm from Python: a thin ctypes binding over libcollm.so, numpy in and out.

    import collm
    ds = collm.Dataset("run/mydata")                  # a dataset folder (collm prepare / synth)
    m = collm.Model("run/stage2.gguf", threads=2)     # a checkpoint from collm train
    scores = m.score_split(ds, "valid")               # float32 scores, one per row (as collm eval)
    report = m.evaluate(ds, "valid")                  # the keys of `collm eval --json`
    s = m.score(ds, users=[7, 7], items=[12, 40])     # (user, item) pairs' logits (fused=True: eval's score)
    ix = collm.Index("run/items.faiss")
    top = m.recommend(ds, ix, user=7, k=10, candidates=100)
    collm.auc(scores, labels), collm.uauc(users, scores, labels)

Every call goes through the library's public C API (include/collm/*.h); a
failing call raises collm.Error with the library's one-line message
(collm_last_error()). The library is found at $COLLM_LIB, else
<repository>/build/libcollm.so beside this package, else the installed
libcollm.so.0. Objects hold C handles: close() them, or use `with`.
"""
import ctypes as C
import ctypes.util
import os
import threading
import weakref

import numpy as np

__all__ = ["Error", "Dataset", "Split", "Model", "Index", "auc", "uauc", "version", "library_path"]


class Error(RuntimeError):
    """A collm call failed; the message is collm_last_error()."""


# ------------------------------------------------------------------ library


def _cpu_has_avx512():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return {"avx512f", "avx512dq", "avx512bw", "avx512vl"} <= flags
    except OSError:
        pass
    return False


def _library_settings():
    # The collm command sets these before OpenBLAS / libgomp load (src/cli/main.c);
    # the same here, so the binding runs the same GEMM kernels and its scores
    # equal the command's.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "8")
    if "OPENBLAS_CORETYPE" not in os.environ and _cpu_has_avx512():
        os.environ["OPENBLAS_CORETYPE"] = "SkylakeX"


def _find_library():
    env = os.environ.get("COLLM_LIB")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    built = os.path.join(here, "..", "..", "build", "libcollm.so")
    if os.path.exists(built):
        return os.path.normpath(built)
    found = ctypes.util.find_library("collm")
    if found:
        return found
    raise OSError("libcollm.so not found: build it (make) or set COLLM_LIB=/path/to/libcollm.so")


_library_settings()
library_path = _find_library()
_lib = C.CDLL(library_path)

# Mirrors of the public structs (include/collm/dataset.h, metrics.h,
# recommend.h). Keep them in step with the headers; tests/cli/test_python.sh
# compares every result with the collm command's.
_i32p, _i64p, _i8p, _f32p = C.POINTER(C.c_int32), C.POINTER(C.c_int64), C.POINTER(C.c_int8), C.POINTER(C.c_float)


class _Items(C.Structure):
    _fields_ = [("n", C.c_int32), ("title", C.POINTER(C.c_char_p)), ("author", C.POINTER(C.c_char_p)),
                ("storage", C.c_void_p)]


class _Split(C.Structure):
    _fields_ = [("path", C.c_char_p), ("n", C.c_int64), ("user", _i32p), ("item", _i32p), ("label", _i8p),
                ("timestamp", _i64p), ("not_cold", _i8p), ("his_offset", _i64p), ("his", _i32p),
                ("his_label", _i8p), ("max_user", C.c_int32), ("max_item", C.c_int32)]


class _Dataset(C.Structure):
    _fields_ = [("dir", C.c_char_p), ("items", C.POINTER(_Items)), ("train", C.POINTER(_Split)),
                ("valid", C.POINTER(_Split)), ("valid_small", C.POINTER(_Split)), ("n_users", C.c_int32),
                ("n_items", C.c_int32), ("is_book", C.c_int)]


class _Report(C.Structure):
    _fields_ = [("n", C.c_int64), ("n_pos", C.c_int64), ("n_users", C.c_int64), ("n_users_uauc", C.c_int64),
                ("auc", C.c_double), ("uauc", C.c_double), ("n_warm", C.c_int64), ("n_cold", C.c_int64),
                ("auc_warm", C.c_double), ("auc_cold", C.c_double)]


class _Request(C.Structure):
    _fields_ = [("user", C.c_int32), ("history", _i32p), ("n_history", C.c_int), ("k", C.c_int),
                ("n_candidates", C.c_int), ("share_prefix", C.c_int), ("fusion_lambda", C.c_float),
                ("fusion_popularity", C.c_float), ("exclude", _i32p), ("n_exclude", C.c_int),
                ("exclude_rated", C.c_int)]


class _RecItem(C.Structure):
    _fields_ = [("item", C.c_int32), ("llm_score", C.c_float), ("retrieval_score", C.c_float), ("score", C.c_float)]


class _RecInfo(C.Structure):
    _fields_ = [("n_results", C.c_int), ("n_candidates", C.c_int), ("used_mean_query", C.c_int),
                ("prefix_tokens", C.c_int), ("n_history", C.c_int), ("fusion_lambda", C.c_float),
                ("fusion_popularity", C.c_float), ("retrieve_s", C.c_double), ("rerank_s", C.c_double)]


def _fn(name, restype, *argtypes):
    f = getattr(_lib, name)
    f.restype = restype
    f.argtypes = list(argtypes)
    return f


_vp, _cp = C.c_void_p, C.c_char_p
_version = _fn("collm_version", _cp)
_last_error = _fn("collm_last_error", _cp)
_clear_error = _fn("collm_clear_error", None)
_pool_create = _fn("collm_pool_create", _vp, C.c_int)
_pool_free = _fn("collm_pool_free", None, _vp)
_blas_threads = _fn("collm_blas_set_threads", None, C.c_int)
_retrieval_threads = _fn("collm_retrieval_set_threads", None, C.c_int)
_ds_load = _fn("collm_rec_dataset_load", C.POINTER(_Dataset), _cp)
_ds_free = _fn("collm_rec_dataset_free", None, C.POINTER(_Dataset))
_ds_split = _fn("collm_rec_dataset_load_split", C.POINTER(_Split), C.POINTER(_Dataset), _cp)
_split_free = _fn("collm_rec_split_free", None, C.POINTER(_Split))
_items_grow = _fn("collm_rec_items_grow", C.c_int, C.POINTER(_Items), C.c_int32)
_model_load = _fn("collm_model_load", _vp, _cp, _cp, _vp)
_model_free = _fn("collm_model_free", None, _vp)
_stage = _fn("collm_stage", C.c_int, _vp)
_has_slots = _fn("collm_has_slots", C.c_int, _vp)
_cf_items = _fn("collm_cf_items", _f32p, _vp, _i32p, C.POINTER(C.c_int))
_check_dataset = _fn("collm_model_check_dataset", C.c_int, _vp, C.POINTER(_Dataset), _cp, _vp, _vp)
_score_split = _fn("collm_score_split", C.c_int, _vp, C.POINTER(_Dataset), C.POINTER(_Split), C.c_int, _f32p,
                   C.POINTER(C.c_double))
_auc = _fn("collm_metrics_auc", C.c_double, _f32p, _i8p, C.c_int64)
_uauc = _fn("collm_metrics_uauc", C.c_double, _i32p, _f32p, _i8p, C.c_int64, _i64p)
_evaluate = _fn("collm_metrics_evaluate", C.c_int, C.POINTER(_Split), _f32p, C.POINTER(_Report))
_hist_build = _fn("collm_recommend_histories_build", _vp, C.POINTER(_Dataset))
_hist_free = _fn("collm_recommend_histories_free", None, _vp)
_user_history = _fn("collm_recommend_user_history", C.c_int, _vp, C.c_int32, C.POINTER(_i32p), _i64p)
_ctx_create = _fn("collm_recommend_context_create", _vp, _vp, _vp)
_ctx_free = _fn("collm_llm_context_free", None, _vp)
_score_items = _fn("collm_recommend_score_items", C.c_int, _vp, C.POINTER(_Items), C.c_int32, _i32p, C.c_int64,
                   _i32p, C.c_int, C.c_int, _vp, _f32p, C.POINTER(C.c_int))
_fuse_items = _fn("collm_score_fuse_items", C.c_int, _vp, C.c_int32, _i32p, C.c_int64, _i32p, C.c_int, _f32p, _f32p)
_request_default = _fn("collm_recommend_request_default", None, C.POINTER(_Request))
_recommend = _fn("collm_recommend_for_user", C.c_int, _vp, _vp, C.POINTER(_Items), _vp, C.POINTER(_Request), _vp,
                 C.POINTER(_RecItem), C.POINTER(_RecInfo))
_index_load = _fn("collm_retrieval_index_load", _vp, _cp)
_index_free = _fn("collm_retrieval_index_free", None, _vp)
_index_size = _fn("collm_retrieval_index_size", C.c_int64, _vp)
_index_check_items = _fn("collm_retrieval_index_check_items", C.c_int, _vp, _f32p, C.c_int32, C.c_int)


def _raise(what):
    msg = (_last_error() or b"").decode("utf-8", "replace")
    raise Error(msg or what)


def _check(rc, what):
    if rc != 0:
        _raise(what)


# a mistyped COLLM_ISA / COLLM_GEMM / COLLM_QMM would silently run the default kernels
_check(_fn("collm_check_environment", C.c_int)(), "collm_check_environment")


def _path(p):
    return os.fsencode(p)


_I32_MAX = 2 ** 31 - 1


def _arr(x, dtype, name):
    """A contiguous 1-D array of dtype. Integer dtypes take whole numbers in their range only: a
    float like 7.9 or an id beyond 2^31 would otherwise be cut to another id without a word."""
    src = np.asarray(x)
    if np.issubdtype(np.dtype(dtype), np.integer) and src.size:
        if not (np.issubdtype(src.dtype, np.integer) or np.issubdtype(src.dtype, np.bool_) or
                (np.issubdtype(src.dtype, np.floating) and np.all(np.isfinite(src)) and np.all(src == np.floor(src)))):
            raise TypeError("%s must hold whole numbers (got %s)" % (name, src.dtype))
        info = np.iinfo(dtype)
        if src.min() < info.min or src.max() > info.max:
            raise ValueError("%s: values must lie in %d..%d" % (name, info.min, info.max))
    a = np.ascontiguousarray(src, dtype=dtype)
    if a.ndim != 1:
        raise ValueError("%s must be one-dimensional" % name)
    return a


def _int(x, name, lo=-2 ** 31, hi=_I32_MAX):
    """x as a Python int in lo..hi (a C int argument: ctypes would silently keep the low 32 bits)."""
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)):
        raise TypeError("%s must be an integer (got %r)" % (name, x))
    v = int(x)
    if not lo <= v <= hi:
        raise ValueError("%s: %d is outside %d..%d" % (name, v, lo, hi))
    return v


def _ptr(a, ctype):
    return a.ctypes.data_as(C.POINTER(ctype))


def version():
    """The library's version string (collm_version())."""
    return _version().decode()


# ------------------------------------------------------------------ metrics


def auc(scores, labels):
    """sklearn's roc_auc_score (ties count 1/2); NaN when undefined (metrics.h)."""
    s, y = _arr(scores, np.float32, "scores"), _arr(labels, np.int8, "labels")
    if len(s) != len(y):
        raise ValueError("scores and labels differ in length")
    return float(_auc(_ptr(s, C.c_float), _ptr(y, C.c_int8), len(s)))


def uauc(users, scores, labels):
    """Mean per-user AUC over users with both classes (metrics.h); NaN when none counts."""
    u, s, y = _arr(users, np.int32, "users"), _arr(scores, np.float32, "scores"), _arr(labels, np.int8, "labels")
    if not len(u) == len(s) == len(y):
        raise ValueError("users, scores and labels differ in length")
    return float(_uauc(_ptr(u, C.c_int32), _ptr(s, C.c_float), _ptr(y, C.c_int8), len(s), None))


# ------------------------------------------------------------------ data


class _Handles:
    """Owns C handles: close() frees each attribute in _owned ((name, free function), in that order) once;
    `with` and garbage collection close too. A method of a closed object raises Error (its handles
    are gone; the C library would be handed NULL)."""

    _owned = ()

    def _open(self):
        """The object's main handle, or Error when it was closed."""
        p = getattr(self, "_p", None)
        if not p:
            raise Error("%s is closed" % type(self).__name__)
        return p

    def close(self):
        for name, free in self._owned:
            if getattr(self, name, None):
                free(getattr(self, name))
                setattr(self, name, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()


class Split(_Handles):
    """One split file: numpy copies of its columns (users, items, labels, timestamps, not_cold)."""

    _owned = (("_p", _split_free),)

    def __init__(self, ptr):
        self._p = ptr
        sp = ptr.contents
        n = sp.n
        self.path = sp.path.decode() if sp.path else None
        self.n = n

        def col(field, dtype):
            return np.ctypeslib.as_array(getattr(sp, field), shape=(n,)).astype(dtype, copy=True) if n else \
                np.zeros(0, dtype)

        self.users, self.items = col("user", np.int32), col("item", np.int32)
        self.labels, self.timestamps = col("label", np.int8), col("timestamp", np.int64)
        self.not_cold = col("not_cold", np.int8)

    def __len__(self):
        return self.n


class Dataset(_Handles):
    """A dataset folder (docs/data.md): items plus train / valid / valid_small."""

    _owned = (("_hist", _hist_free), ("_p", _ds_free))

    def __init__(self, path):
        self._lock = threading.Lock()  # (the histories are built once, on first use)
        self._p = _ds_load(_path(path))
        if not self._p:
            _raise("cannot load dataset %s" % path)
        self._hist = None
        self.path = str(path)

    @property
    def n_users(self):
        return self._open().contents.n_users

    @property
    def n_items(self):
        return self._open().contents.n_items

    def title(self, item):
        it = self._open().contents.items.contents
        if not 0 <= item < it.n:
            raise IndexError("item %d outside 0..%d" % (item, it.n - 1))
        return it.title[item].decode("utf-8")

    def split(self, name_or_path):
        """train | valid | valid_small | test | a split file path -> Split."""
        p = _ds_split(self._open(), _path(name_or_path))
        if not p:
            _raise("cannot load split %s" % name_or_path)
        return Split(p)

    def _histories(self):
        with self._lock:
            if not self._hist:
                self._hist = _hist_build(self._open())
                if not self._hist:
                    _raise("cannot build histories")
            return self._hist

    def history(self, user):
        """The user's latest history as recommend uses it (recommend.h), with the 0 sentinel."""
        his, n = _i32p(), C.c_int64()
        _check(_user_history(self._histories(), _int(user, "user"), C.byref(his), C.byref(n)), "no history")
        return np.ctypeslib.as_array(his, shape=(n.value,)).astype(np.int32, copy=True)


class Index(_Handles):
    """A Faiss index from `collm index` (retrieval.h)."""

    _owned = (("_p", _index_free),)

    def __init__(self, path):
        self._p = _index_load(_path(path))
        if not self._p:
            _raise("cannot load index %s" % path)


# ------------------------------------------------------------------ model


_REPORT_KEYS = ("auc", "uauc", "n", "n_pos", "n_users", "n_users_uauc", "auc_warm", "auc_cold", "n_warm", "n_cold")


class Model(_Handles):
    """A CoLLM checkpoint loaded for scoring (collm.h collm_model_load).

    base overrides the base model path stored in the checkpoint; threads is
    the worker count (default 1). One Model serves one call at a time: its
    methods take a lock, so threads that share a Model wait for each other
    (the C model's inference context and scorer are single-caller, collm.h);
    for parallel scoring give each thread its own Model."""

    _owned = (("_ctx", _ctx_free), ("_p", _model_free), ("_pool", _pool_free))

    def __init__(self, ckpt, base=None, threads=1):
        self._lock = threading.RLock()
        self.threads = max(1, _int(threads, "threads"))
        _blas_threads(self.threads)
        _retrieval_threads(self.threads)
        self._pool = _pool_create(self.threads) if self.threads > 1 else None
        if self.threads > 1 and not self._pool:
            _raise("cannot create a thread pool")
        self._ctx = None
        self._indexes = weakref.WeakSet()  # indexes checked against this model's item table
        self._p = _model_load(_path(ckpt), _path(base) if base else None, self._pool)
        if not self._p:
            self.close()
            _raise("cannot load %s" % ckpt)
        self.path = str(ckpt)

    @property
    def stage(self):
        return _stage(self._open())

    @property
    def has_slots(self):
        return bool(_has_slots(self._open()))

    def close(self):
        with self._lock:  # (not while another thread's call uses the handles)
            super().close()

    def _split(self, dataset, split):
        if isinstance(split, Split):
            return split, False
        return dataset.split(split), True

    def score_split(self, dataset, split, batch=32):
        """float32 scores of every row of a split (name, path or Split), as `collm eval` ranks them:
        the "Yes" logit plus the checkpoint's fitted fusion (`collm fit-score`), if any."""
        batch = _int(batch, "batch", 1)
        sp, own = self._split(dataset, split)
        try:
            out = np.zeros(max(sp.n, 1), np.float32)
            with self._lock:
                _check(_score_split(self._open(), dataset._open(), sp._open(), batch, _ptr(out, C.c_float), None),
                       "scoring failed")
            return out[:sp.n]
        finally:
            if own:
                sp.close()

    def evaluate(self, dataset, split, batch=32):
        """AUC / UAUC / warm-cold AUC of a split: the keys of `collm eval --json` (NaN where undefined)."""
        sp, own = self._split(dataset, split)
        try:
            scores = self.score_split(dataset, sp, batch)
            r = _Report()
            _check(_evaluate(sp._open(), _ptr(np.ascontiguousarray(scores), C.c_float), C.byref(r)), "evaluation failed")
            return {k: getattr(r, k) for k in _REPORT_KEYS}
        finally:
            if own:
                sp.close()

    def _context(self):
        if not self._ctx:
            self._ctx = _ctx_create(self._open(), self._pool)
            if not self._ctx:
                _raise("cannot create a context")
        return self._ctx

    def _items_for(self, dataset):
        # a dataset with fewer items or users than the checkpoint was trained with is another one
        _check(_check_dataset(self._open(), dataset._open(), None, None, None),
               "not the dataset the checkpoint was trained on")
        # the CF tables may know more items than items.tsv lists (cli_rec_setup_load does the same)
        n, d = C.c_int32(), C.c_int()
        if _cf_items(self._p, C.byref(n), C.byref(d)) and dataset._p.contents.items.contents.n < n.value:
            _check(_items_grow(dataset._p.contents.items, n.value), "cannot grow the items table")
        return dataset._p.contents.items

    def _index_for(self, index):
        # an index of another model is refused as `collm recommend` refuses it
        # (cli_rec_setup_load): its count, then its recorded item table
        if index in self._indexes:
            return index._open()
        n, d = C.c_int32(), C.c_int()
        items = _cf_items(self._open(), C.byref(n), C.byref(d))
        if not items:
            raise Error("%s holds no collaborative vectors (a stage-1 checkpoint?)" % self.path)
        size = _index_size(index._open())
        if size != n.value - 1:
            raise Error("the index holds %d vectors but %s's item table has %d items (ids 1..%d): an index of another "
                   "model?" % (size, self.path, n.value, n.value - 1))
        _check(_index_check_items(index._open(), items, n, d), "the index does not match %s" % self.path)
        self._indexes.add(index)
        return index._open()

    def score(self, dataset, users, items, share_prefix=True, fused=False):
        """float32 "Yes" logits of (user, item) pairs; each user's prompt holds the user's latest
        history from dataset (as `collm recommend`). Pairs of one user are scored together.
        fused=True: the score `collm eval` ranks by instead, the logit plus the checkpoint's
        fitted fusion (`collm fit-score`: w * cf + sum of v_k * encoder_k), as /score's "score"."""
        u, it = _arr(users, np.int32, "users"), _arr(items, np.int32, "items")
        if len(u) != len(it):
            raise ValueError("users and items differ in length")
        out = np.zeros(len(u), np.float32)
        with self._lock:
            self._score_pairs(dataset, u, it, share_prefix, fused, out)
        return out

    def _score_pairs(self, dataset, u, it, share_prefix, fused, out):
        table = self._items_for(dataset)
        for user in np.unique(u):
            rows = np.nonzero(u == user)[0]
            his = dataset.history(int(user))
            cands = np.ascontiguousarray(it[rows])
            got = np.zeros(len(rows), np.float32)
            _check(_score_items(self._p, table, int(user), _ptr(his, C.c_int32), len(his), _ptr(cands, C.c_int32),
                                len(rows), int(bool(share_prefix)), self._context(), _ptr(got, C.c_float), None),
                   "scoring failed")
            if fused:
                _check(_fuse_items(self._p, int(user), _ptr(his, C.c_int32), len(his), _ptr(cands, C.c_int32),
                                   len(rows), _ptr(got, C.c_float), _ptr(got, C.c_float)), "fusing the scores failed")
            out[rows] = got

    def recommend(self, dataset, index, user=None, history=None, k=10, candidates=100, share_prefix=True,
                  exclude=None, exclude_rated=False):
        """Top-k for a user (or an explicit history): Faiss candidates re-ranked by the LLM, as
        `collm recommend`. exclude: item ids never to return; exclude_rated: also leave out every
        item the user has a row of in the dataset. Returns a dict with numpy arrays items,
        llm_scores (raw logits), probabilities (their sigmoid), retrieval_scores, scores (the
        order's fused score) and the request's info."""
        req = _Request()
        _request_default(C.byref(req))
        if user is None and history is None:
            raise ValueError("give user or history")
        req.user = -1 if user is None else _int(user, "user", 0)
        k, candidates = _int(k, "k", 1), _int(candidates, "candidates", 1)
        his = None
        if history is not None:
            his = _arr(history, np.int32, "history")
            req.history, req.n_history = _ptr(his, C.c_int32), len(his)
        req.k, req.n_candidates, req.share_prefix = k, candidates, int(bool(share_prefix))
        ex = None
        if exclude is not None and len(exclude):
            ex = _arr(exclude, np.int32, "exclude")
            req.exclude, req.n_exclude = _ptr(ex, C.c_int32), len(ex)
        req.exclude_rated = int(bool(exclude_rated))
        out = (_RecItem * k)()  # (k as the request holds it: checked above, never cut)
        info = _RecInfo()
        with self._lock:
            _check(_recommend(self._open(), self._index_for(index), self._items_for(dataset), dataset._histories(),
                              C.byref(req), self._context(), out, C.byref(info)), "recommend failed")
        n = info.n_results
        return {
            "items": np.array([out[i].item for i in range(n)], np.int32),
            "llm_scores": np.array([out[i].llm_score for i in range(n)], np.float32),
            "probabilities": (1.0 / (1.0 + np.exp(-np.array([out[i].llm_score for i in range(n)], np.float64)))
                              ).astype(np.float32),
            "retrieval_scores": np.array([out[i].retrieval_score for i in range(n)], np.float32),
            "scores": np.array([out[i].score for i in range(n)], np.float32),
            "candidates": info.n_candidates,
            "cold_start_query": bool(info.used_mean_query),
            "prefix_tokens": info.prefix_tokens,
            "history_length": info.n_history,
        }

