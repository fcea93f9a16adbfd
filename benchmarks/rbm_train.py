"""RBM training speed and memory on the CPU (and GPU): this project beside references.

    python benchmarks/rbm_train.py                    # CPU: MovieLens-100k + the ML-10M shape
    python benchmarks/rbm_train.py --shape ml10m --epochs 1      # one ML-10M-shaped epoch
    python benchmarks/rbm_train.py --users 20000 --items 5000 --ratings 2000000
    python benchmarks/rbm_train.py --datasets movielens-100k,netflix-shape   # the older table
    python benchmarks/rbm_train.py --device cuda --scale 1 --hidden 100   # one GPU, full shape
    python benchmarks/rbm_train.py --json out.json

Each cell runs in its own subprocess so that peak host memory (ru_maxrss) is that cell's own.
The model is the RBMConfig defaults unless --hidden/--preference-hidden/--batch-size say
otherwise. Three references, each training *the same model* (ternary units, tied engagement
weights, the conditional chain for the preference units, SGD with momentum, l2):

* ``reference``: this project before the fast path, i.e. the textbook functions kept in
  ``rbm/functional.py`` (``cd_k_sparse`` + ``conditional_cd_sparse`` on the full W, fp32,
  batch 32, a W-sized gradient and l2 temporary per step). On large shapes it is timed over
  ``--reference-batches`` batches and scaled to an epoch (the table says so).
* ``naive``: the whole users x items matrix dense, every product dense (small shapes only).
* ``peer``: Microsoft Recommenders' RBM (TensorFlow; 600 hidden units, 5-state softmax
  visible units, batch 60), 30 epochs on MovieLens-100k, only when ``tensorflow`` and
  ``recommenders`` are installed; the row is skipped otherwise.

The MovieLens-100k row trains the defaults for 30 epochs (``movielens-100k x30``: the whole
``fit``, after one warm-up fit in the same process, as the peer's figure excludes
TensorFlow's start-up); the other rows report the median epoch after a warm-up epoch.
Ratios > 1 mean this project is faster / smaller. A run on a machine without CUDA and
``--device cuda`` exits cleanly saying so.

Shapes: MovieLens-10M (``--shape ml10m``): 69,878 users x 10,677 items, 9.98M ratings, Zipf
item popularity, log-normal user activity (generated here). Netflix: 480,189 x 17,770, ~100M
ratings (``--scale`` shrinks the users).

What each step bought, measured 2026-12-02 on the shared 2-core VM (AMD EPYC with
AVX512-BF16, no AMX; torch 2.13.0+cpu; 1 torch thread; other jobs kept the load average at
2-10, so CPU seconds of this process, steadier than wall clock, are what the table shows;
MovieLens-100k: the 30-epoch fit with the defaults of that step; ML-10M shape: one epoch,
extrapolated from 384 / 96 / 12 timed batches after 3 warm-up batches):

| step | ML-100k x30 | ML-10M epoch |
|---|---|---|
| 0. before: the reference (wall clock, same run as the table) | 67.6 s | ~355 s |
| 1. structured CD-1 (below), fp32, batch 32 | 13.4 s | 121 s |
| 2. + bf16 products and passes (``matmul_dtype="auto"``) | 7.6 s | 89 s |
| 3. + batch 128, learning rate 0.04 (was 32, 0.01) | 4.1 s | 40 s |
| 4. + the batch grows to n_users // 64, up to 1024 | 4.1 s | 22 s |

Step 1 is ``recommender.rbm.structured.structured_cd1``: the tied engagement logits computed
once per item, no joint
statistics for the preference units (the conditional chain trains them), the conditional
chain's like-vs-dislike logits read off the joint ones at the rated entries (no product of its
own), sparse CSR products for the scatter-adds, compact training weights (``W_e`` per item)
and torch's fused SGD. Step 3 keeps MovieLens-100k's quality (P@10 0.396, nDCG@10 0.456,
like/dislike 0.708 with ``recommender evaluate``; model seed 1: 0.389, 0.448, 0.708). Step 4
changes nothing below 8,192 users (MovieLens-100k stays at 128).

Threads: before these steps, the MovieLens-100k fit (75 % split) took 96 s with torch's
default 2 threads on the busy VM and 20.7 s with 1; ``core.backend.default_threads`` now
picks the CPUs not kept busy by other processes (here 1 under load, 2 when idle) and
RECOMMENDER_THREADS overrides it. The MovieLens-100k fit of step 3 took 4.2 s wall at load
average ~2.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recommender.data import Ratings, generate_interactions, read_ratings  # noqa: E402
from recommender.rbm import RBMConfig, RBMRecommender  # noqa: E402

NETFLIX_USERS, NETFLIX_ITEMS, NETFLIX_PER_USER = 480_189, 17_770, 209.0
ML10M_USERS, ML10M_ITEMS, ML10M_RATINGS = 69_878, 10_677, 9_980_000
MOVIELENS = Path(os.environ.get("MOVIELENS_DIR", REPO.parent / "shared/data/movielens-100k"))


def generate_shape(n_users: int, n_items: int, n_ratings: int, seed: int = 0,
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MovieLens-like data of a given shape: log-normal ratings per user (sigma 1, at least
    20 as in MovieLens, at most half the catalogue), Zipf item popularity (exponent 1), one
    rating per (user, item), values from an item quality + a user bias + noise (about half
    the ratings >= 4). The ratings come out within ~1 % of ``n_ratings``."""
    rng = np.random.default_rng(seed)
    popularity = 1.0 / np.arange(1, n_items + 1)
    popularity = popularity[rng.permutation(n_items)]
    cdf = np.cumsum(popularity / popularity.sum())
    activity = rng.lognormal(0.0, 1.0, n_users)
    per_user = n_ratings / n_users
    keys = np.empty(0, dtype=np.int64)
    for _ in range(10):  # popular items repeat within heavy users: top up after de-duplication
        missing = n_ratings - len(keys)
        if missing <= n_ratings // 200:
            break
        scale = missing / n_users / per_user
        counts = np.clip(np.round(activity / activity.mean() * per_user * scale), 1,
                         n_items // 2).astype(np.int64)
        if len(keys) == 0:
            counts = np.maximum(counts, 20)
        users = np.repeat(np.arange(n_users, dtype=np.int64), counts)
        items = np.minimum(np.searchsorted(cdf, rng.random(len(users))), n_items - 1)
        keys = np.unique(np.concatenate([keys, users * n_items + items]))
    u, i = keys // n_items, keys % n_items
    quality = rng.normal(3.6, 0.5, n_items)
    bias = rng.normal(0.0, 0.4, n_users)
    values = np.clip(np.round(quality[i] + bias[u] + rng.normal(0.0, 0.9, len(keys))), 1, 5)
    return u, i, values.astype(np.float32)


def load_dataset(name: str, args) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Integer (user, item, rating) arrays and the shape."""
    if name == "movielens-100k":
        if (MOVIELENS / "u.data").exists():
            r = read_ratings(MOVIELENS / "u.data")
            users, u = np.unique(r.users, return_inverse=True)
            items, i = np.unique(r.items, return_inverse=True)
            return u, i, r.values, len(users), len(items)
        u, i, v = generate_interactions(943, 1682, 106.0, seed=0)
        return u, i, v, 943, 1682
    if name == "ml10m-shape":
        u, i, v = generate_shape(ML10M_USERS, ML10M_ITEMS, ML10M_RATINGS)
        return u, i, v, ML10M_USERS, ML10M_ITEMS
    if name == "custom-shape":
        u, i, v = generate_shape(args.users, args.items, args.ratings)
        return u, i, v, args.users, args.items
    n_users = max(int(NETFLIX_USERS * args.scale), 100)
    u, i, v = generate_interactions(n_users, NETFLIX_ITEMS, NETFLIX_PER_USER, n_groups=32,
                                    zipf=1.1, seed=0)
    return u, i, v, n_users, NETFLIX_ITEMS


def to_ratings(u, i, v) -> Ratings:
    """Integer ids as text, the engine's public input type; from codes (no Python object
    per rating) where Ratings has that constructor."""
    values = v.astype(np.float32)
    timestamps = np.zeros(len(v), dtype=np.int64)
    if hasattr(Ratings, "from_codes"):
        user_ids = np.arange(int(u.max()) + 1).astype(str).astype(object)
        item_ids = np.arange(int(i.max()) + 1).astype(str).astype(object)
        return Ratings.from_codes(u, i, user_ids, item_ids, values, timestamps)
    return Ratings(u.astype(str).astype(object), i.astype(str).astype(object), values,
                   timestamps)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# -- this project -------------------------------------------------------------------------------

def warm_up() -> None:
    """What any first training in a process pays once: torch.optim's first optimizer imports
    torch._dynamo (~1-2 s of CPU), the first bf16 products build their kernels."""
    ratings = to_ratings(*generate_interactions(60, 40, 10.0, seed=1))
    RBMRecommender(RBMConfig(epochs=1, n_hidden=8, n_preference_hidden=8)).fit(
        ratings, verbose=0)


def run_project(u, i, v, config: RBMConfig, epochs: int, whole_fit: bool = False) -> dict:
    warm_up()
    ratings = to_ratings(u, i, v)
    before = peak_rss_mb()
    model = RBMRecommender(config.replace(epochs=epochs if whole_fit else epochs + 1))
    t0, c0 = time.perf_counter(), time.process_time()
    history = model.fit(ratings, verbose=0)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"peak_before_fit_mb": before, "threads": torch.get_num_threads()}
    if whole_fit:
        out.update(fit_seconds=wall, fit_cpu_seconds=cpu,
                   epoch_seconds=float(np.median(history.history["epoch_seconds"])))
    else:  # the first epoch warms up
        out["epoch_seconds"] = float(np.median(history.history["epoch_seconds"][1:]))
        out["epoch_cpu_seconds"] = float(np.median(history.history["epoch_cpu_seconds"][1:]))
    return out


# -- the reference: this project's training before the fast path ---------------------------------

def run_reference(u, i, v, n_users, n_items, config: RBMConfig, epochs: int, device,
                  max_batches: int | None, whole_fit: bool = False) -> dict:
    """The CD step as the project had it before (``cd_k_sparse`` + ``conditional_cd_sparse``
    on the full W with its own hidden sample, W-sized l2 and gradient temporaries, SGD with
    momentum through torch.optim), batch 32, fp32. With ``max_batches`` the epoch time is
    extrapolated from that many batches after a warm-up of 5."""
    from recommender.rbm import functional as Fn
    from recommender.rbm.model import N_STATES, SparseRatings

    warm_up()
    rows, cols, liked = u.astype(np.int64), i.astype(np.int64), (v >= config.like_threshold)
    data = SparseRatings.from_indices(rows, cols, liked.astype(np.int64), n_users, n_items,
                                      device)
    g = torch.Generator(device=device).manual_seed(0)
    he, H = config.n_hidden, config.n_hidden + config.n_preference_hidden
    W = torch.randn(n_items * N_STATES, H, generator=g, device=device) * config.init_std
    W.view(-1, 2, H)[:, 1, :he] = W.view(-1, 2, H)[:, 0, :he]
    a = torch.zeros(n_items * N_STATES, device=device)
    b = torch.zeros(H, device=device)
    opt = torch.optim.SGD([W, a, b], lr=config.learning_rate, momentum=config.momentum)
    batch_size = 32

    def step(batch_rows):
        batch = data.batch(batch_rows)
        stats = Fn.cd_k_sparse(batch, W, a, b, k=1, n_states=N_STATES, generator=g)
        cond, cond_db = Fn.conditional_cd_sparse(batch, W, a, b, stats.h_0, n_states=N_STATES,
                                                 columns=slice(he, None), generator=g)
        grad = torch.empty_like(W)
        joint3 = stats.dW.view(-1, N_STATES, H)[:, :, :he]
        tied = joint3.mean(dim=1, keepdim=True)
        W_e = W.view(-1, N_STATES, H)[:, :1, :he]
        g_e = W_e * (2 * config.weight_decay) - tied
        grad.view(-1, N_STATES, H)[:, :, :he] = g_e.expand(-1, N_STATES, -1)
        grad[:, he:] = W[:, he:] * (2 * config.preference_decay) - cond
        db = torch.cat([stats.db[:he], cond_db])
        W.grad, a.grad, b.grad = grad, -stats.da, -db
        opt.step()
        return float(stats.reconstruction_error)

    n_batches = -(-n_users // batch_size)
    times, total = [], 0.0
    for epoch in range(epochs if whole_fit else epochs + 1):
        order = torch.randperm(n_users, generator=torch.Generator().manual_seed(epoch))
        limit = n_batches if max_batches is None else min(n_batches, max_batches + 5)
        t0 = time.perf_counter()
        for j in range(limit):
            if j == 5 and limit < n_batches:
                t0 = time.perf_counter()
            step(order[j * batch_size:(j + 1) * batch_size].to(device))
        elapsed = time.perf_counter() - t0
        times.append(elapsed if limit == n_batches else elapsed / (limit - 5) * n_batches)
        total += elapsed
    out = {"epoch_seconds": float(np.median(times if whole_fit else times[1:])),
           "extrapolated": max_batches is not None and max_batches + 5 < n_batches}
    if whole_fit:
        out["fit_seconds"] = total
    return out


# -- the naive reference ------------------------------------------------------------------------

def run_naive(u, i, v, n_users, n_items, config: RBMConfig, epochs: int, device,
              whole_fit: bool = False) -> dict:
    """The same model, written the obvious dense way (reference only; not used by the project)."""
    g = torch.Generator(device=device).manual_seed(0)
    V = torch.full((n_users, n_items), -1.0)  # the whole matrix, dense, on the host
    V[torch.from_numpy(u), torch.from_numpy(i)] = torch.from_numpy(
        (v >= config.like_threshold).astype(np.float32))
    he, hp = config.n_hidden, config.n_preference_hidden
    H = he + hp
    W = torch.randn(n_items, 2, H, generator=g, device=device) * config.init_std
    W[:, 1, :he] = W[:, 0, :he]
    a = torch.zeros(n_items, 2, device=device)
    b = torch.zeros(H, device=device)
    vel = [torch.zeros_like(W), torch.zeros_like(a), torch.zeros_like(b)]
    lr, mom = config.learning_rate, config.momentum

    def hidden(x):  # x: (B, items, 2)
        return torch.sigmoid(torch.einsum("bis,ish->bh", x, W) + b)

    def visible(h):  # -> (B, items, 3) softmax over [unrated, disliked, liked]
        logits = torch.einsum("bh,ish->bis", h, W) + a
        logits = torch.cat([torch.zeros_like(logits[..., :1]), logits], dim=-1)
        return torch.softmax(logits, dim=-1)

    times = []
    for _epoch in range(epochs if whole_fit else epochs + 1):
        t0 = time.perf_counter()
        order = torch.randperm(n_users)
        for start in range(0, n_users, config.batch_size):
            vb = V[order[start:start + config.batch_size]].to(device)
            x0 = torch.stack([(vb == 0).float(), (vb == 1).float()], dim=-1)  # (B, items, 2)
            n = x0.shape[0]
            ph0 = hidden(x0)
            h = (torch.rand(ph0.shape, generator=g, device=device) < ph0).float()
            xk = visible(h)[..., 1:]
            phk = hidden(xk)
            dW = (torch.einsum("bis,bh->ish", x0, ph0) - torch.einsum("bis,bh->ish", xk, phk)) / n
            da = (x0 - xk).mean(0)
            db = (ph0 - phk).mean(0)
            # conditional chain for the preference units
            h2 = (torch.rand(ph0.shape, generator=g, device=device) < ph0).float()
            p = visible(h2)[..., 1:]
            rated = (vb >= 0).float().unsqueeze(-1)
            xc = p / p.sum(-1, keepdim=True) * rated
            phc = hidden(xc)
            dWc = (torch.einsum("bis,bh->ish", x0, ph0) - torch.einsum("bis,bh->ish", xc, phc)) / n
            dW[..., he:] = dWc[..., he:]
            db[he:] = (ph0 - phc).mean(0)[he:]
            dW[..., :he] = dW[..., :he].mean(dim=1, keepdim=True)
            grads = [-dW, -da, -db]
            grads[0][..., :he] += 2 * config.weight_decay * W[..., :he]
            grads[0][..., he:] += 2 * config.preference_decay * W[..., he:]
            for param, vbuf, grad in zip((W, a, b), vel, grads, strict=True):
                vbuf.mul_(mom).add_(grad)
                param.sub_(lr * vbuf)
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    if whole_fit:
        return {"epoch_seconds": float(np.median(times)), "fit_seconds": float(sum(times))}
    return {"epoch_seconds": float(np.median(times[1:]))}


# -- data-parallel scaling ----------------------------------------------------------------------

def _ddp_rank(rank: int, world: int, port: int, dataset: str, scale: float, hidden: int,
              preference: int, epochs: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    u, i, v, _, _ = load_dataset(dataset, argparse.Namespace(scale=scale))
    config = RBMConfig(n_hidden=hidden, n_preference_hidden=preference, epochs=epochs + 1,
                       device="cpu")
    model = RBMRecommender(config)
    history = model.fit(to_ratings(u, i, v), verbose=0, distributed=True)
    if rank == 0:
        Path(out).write_text(json.dumps(
            {"epoch_seconds": float(np.median(history.history["epoch_seconds"][1:]))}))
    dist.destroy_process_group()


def scaling(args) -> int:
    """Per-epoch time with 1 and N CPU ranks (gloo on loopback, one thread each)."""
    import socket
    import tempfile

    import torch.multiprocessing as mp

    rows = []
    for world in sorted({1, args.distributed}):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        with tempfile.TemporaryDirectory() as tmp:
            out = f"{tmp}/result.json"
            mp.start_processes(_ddp_rank, args=(world, port, args.datasets.split(",")[0],
                                                args.scale, args.hidden, args.preference_hidden,
                                                args.epochs, out),
                               nprocs=world, join=True, start_method="spawn")
            rows.append((world, json.loads(Path(out).read_text())["epoch_seconds"]))
    base = rows[0][1]
    print(f"data-parallel CPU scaling on {args.datasets.split(',')[0]} (gloo, 1 thread/rank, "
          f"{os.cpu_count()} cores)")
    print(f"{'ranks':>5} {'s/epoch':>9} {'speed-up':>9} {'efficiency':>11}")
    for world, seconds in rows:
        print(f"{world:>5} {seconds:>9.3f} {base / seconds:>8.2f}x {base / seconds / world:>10.0%}")
    return 0


# -- the peer: Microsoft Recommenders' RBM (TensorFlow) ----------------------------------------

def peer_available() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None
               for name in ("tensorflow", "recommenders"))


def run_peer(u, i, v, n_users, n_items, epochs: int) -> dict:
    """recommenders.models.rbm.rbm.RBM as its MovieLens notebook sets it up (600 hidden units,
    batch 60, the dense users x items matrix of ratings, 0 = unrated)."""
    from recommenders.models.rbm.rbm import RBM

    X = np.zeros((n_users, n_items), dtype=np.float32)
    X[u, i] = v
    model = RBM(possible_ratings=np.setdiff1d(np.unique(X), np.array([0])),
                visible_units=n_items, hidden_units=600, training_epoch=epochs,
                minibatch_size=60, keep_prob=0.9, with_metrics=False, seed=42)
    t0 = time.perf_counter()
    model.fit(X)
    seconds = time.perf_counter() - t0
    return {"fit_seconds": seconds, "epoch_seconds": seconds / epochs}


# -- one cell in a subprocess -------------------------------------------------------------------

def make_config(args) -> RBMConfig:
    overrides = {"device": args.device}
    if args.hidden is not None:
        overrides["n_hidden"] = args.hidden
    if args.preference_hidden is not None:
        overrides["n_preference_hidden"] = args.preference_hidden
    if args.batch_size is not None:
        overrides["batch_size"] = args.batch_size
    for pair in args.param or ():
        key, _, value = pair.partition("=")
        try:  # numbers, true/false, lists as JSON; anything else ("float32") as text
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return RBMConfig(**overrides)


def cell(args) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    u, i, v, n_users, n_items = load_dataset(args.dataset, args)
    config = make_config(args)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats()
    whole_fit = args.dataset == "movielens-100k" and not args.per_epoch
    epochs = 30 if whole_fit else args.epochs
    if args.impl == "project":
        out = run_project(u, i, v, config, epochs, whole_fit)
    elif args.impl == "reference":
        large = n_users * n_items > 50_000_000
        out = run_reference(u, i, v, n_users, n_items, config, epochs, device,
                            args.reference_batches if large else None, whole_fit)
    elif args.impl == "peer":
        out = run_peer(u, i, v, n_users, n_items, epochs)
    else:
        out = run_naive(u, i, v, n_users, n_items, config, epochs, device, whole_fit)
    out.update({
        "users": int(n_users), "items": int(n_items), "ratings": int(len(v)),
        "ratings_per_s": len(v) / out["epoch_seconds"],
        "peak_host_mb": peak_rss_mb(),
        "peak_device_mb": (torch.cuda.max_memory_allocated() / 2**20
                           if device.type == "cuda" else 0.0),
        "threads": torch.get_num_threads(),
    })
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--shape", choices=["ml10m"], default=None,
                        help="only this generated shape (ml10m: 69,878 x 10,677, 9.98M)")
    parser.add_argument("--users", type=int, default=None, help="a generated shape: users")
    parser.add_argument("--items", type=int, default=None, help="... items")
    parser.add_argument("--ratings", type=int, default=None, help="... ratings")
    parser.add_argument("--scale", type=float, default=None,
                        help="share of Netflix's users (default 1 on CUDA, 0.01 on CPU)")
    parser.add_argument("--hidden", type=int, default=None,
                        help="engagement hidden units (default: RBMConfig's)")
    parser.add_argument("--preference-hidden", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=1,
                        help="timed epochs after 1 warm-up (the MovieLens-100k row trains 30)")
    parser.add_argument("--per-epoch", action="store_true",
                        help="MovieLens-100k too: median epoch instead of the 30-epoch fit")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="users per batch (default: RBMConfig's; 4096 on CUDA)")
    parser.add_argument("-p", "--param", action="append", metavar="KEY=VALUE",
                        help="another RBMConfig field for this project's cells")
    parser.add_argument("--datasets", default=None,
                        help="comma-separated: movielens-100k, ml10m-shape, netflix-shape "
                             "(default: movielens-100k,ml10m-shape)")
    parser.add_argument("--impls", default="project,reference,naive,peer",
                        help="which of project, reference, naive, peer to run")
    parser.add_argument("--reference-batches", type=int, default=200,
                        help="large shapes: time the reference over this many batches")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: the project's default, see "
                             "recommender.core.backend.default_threads)")
    parser.add_argument("--distributed", type=int, default=0, metavar="N",
                        help="measure data-parallel scaling with 1 vs N CPU ranks instead")
    parser.add_argument("--cell", nargs=2, metavar=("IMPL", "DATASET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("CUDA is not available on this machine: nothing to measure with --device cuda.")
        return 0
    if args.scale is None:
        args.scale = 1.0 if args.device.startswith("cuda") else 0.01
    if args.batch_size is None and args.device.startswith("cuda"):
        args.batch_size = 4096  # a GPU needs large batches to fill it
    custom = (args.users, args.items, args.ratings)
    if any(x is not None for x in custom):
        if not all(x is not None and x > 0 for x in custom):
            parser.error("--users, --items and --ratings go together, each > 0")
        args.datasets = "custom-shape"
    elif args.shape == "ml10m":
        args.datasets = "ml10m-shape"
    args.datasets = args.datasets or "movielens-100k,ml10m-shape"
    from recommender.core import backend

    if args.threads is None:
        args.threads = backend.configure_threads()
    torch.set_num_threads(args.threads)
    if args.distributed:
        return scaling(args)
    if args.cell:
        args.impl, args.dataset = args.cell
        print(json.dumps(cell(args)))
        return 0

    impls = args.impls.split(",")
    results = []
    for dataset in args.datasets.split(","):
        row = {"dataset": dataset}
        for impl in impls:
            if impl == "peer" and (dataset != "movielens-100k" or not peer_available()):
                continue
            if impl == "naive" and dataset not in ("movielens-100k", "netflix-shape"):
                continue  # the dense users x items matrix would not fit
            cmd = [sys.executable, __file__, "--cell", impl, dataset, "--device", args.device,
                   "--scale", str(args.scale), "--epochs", str(args.epochs),
                   "--reference-batches", str(args.reference_batches),
                   "--threads", str(args.threads)]
            for flag in ("hidden", "preference_hidden", "batch_size", "users", "items",
                         "ratings"):
                if getattr(args, flag) is not None:
                    cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
            for pair in (args.param or ()) if impl == "project" else ():
                cmd += ["-p", pair]
            if args.per_epoch:
                cmd.append("--per-epoch")
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                return proc.returncode
            row[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(row)
    print_results(args, results, impls)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": vars(args) | {"json": str(args.json)},
                                         "results": results}, indent=2))
    return 0


def print_results(args, results, impls) -> None:
    config = make_config(args)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    device_name = (torch.cuda.get_device_name() if args.device.startswith("cuda")
                   else f"CPU x{os.cpu_count()}, {args.threads} torch thread(s), load {load:.1f}")
    print(f"device: {device_name}; torch {torch.__version__}; {config.n_hidden} engagement + "
          f"{config.n_preference_hidden} preference hidden units; CD-1; batch "
          f"{config.batch_size}, lr {config.learning_rate:g}, matmul {config.matmul_dtype}")
    header = (f"{'dataset':<18}{'users':>7}{'items':>7}{'ratings':>10} | {'seconds':>8}"
              f"{'CPU s':>7}{'ratings/s':>11}{'host MB':>8} | {'ref s':>8}{'speed-up':>9} | "
              f"{'naive s':>8}{'speed-up':>9} | {'peer s':>7}{'ratio':>7}")
    print(header)
    print("-" * len(header))
    for row in results:
        p = row["project"]
        whole = "fit_seconds" in p
        seconds = p["fit_seconds"] if whole else p["epoch_seconds"]
        name = row["dataset"] + (" x30" if whole else " /ep")
        cpu = p["fit_cpu_seconds"] if whole else p["epoch_cpu_seconds"]
        line = (f"{name:<18}{p['users']:>7}{p['items']:>7}{p['ratings']:>10} | {seconds:>8.2f}"
                f"{cpu:>7.2f}{p['ratings_per_s']:>11,.0f}{p['peak_host_mb']:>8.0f} | ")
        for impl, width in (("reference", 8), ("naive", 8), ("peer", 7)):
            r = row.get(impl)
            if r is None:
                line += f"{'-':>{width}}{'-':>{width + 1 if impl != 'peer' else 7}}"
            else:
                other = r["fit_seconds"] if whole and "fit_seconds" in r else r["epoch_seconds"]
                mark = "~" if r.get("extrapolated") else ""
                line += (f"{mark + format(other, '.2f'):>{width}}"
                         f"{other / seconds:>{width if impl != 'peer' else 6}.2f}x")
            line += " | " if impl != "peer" else ""
        print(line)
    print("seconds: wall clock of the 30-epoch fit (x30) or of the median epoch (/ep); CPU s: "
          "this process's CPU time for the same (steadier on a shared machine).")
    print("~ = extrapolated from "
          f"{args.reference_batches} batches; speed-up = other / this project.")
    if "peer" in impls and not peer_available():
        print("peer: skipped (tensorflow and recommenders are not installed).")
    for row in results:
        p = row["project"]
        print(f"{row['dataset']}: peak RSS before fit {p['peak_before_fit_mb']:.0f} MB "
              f"(data), after {p['peak_host_mb']:.0f} MB")


if __name__ == "__main__":
    raise SystemExit(main())
