"""RBM training speed and memory: this project's sparse CD-k beside a naive dense version.

    python benchmarks/rbm_train.py                    # CPU: MovieLens-100k + Netflix shape x0.01
    python benchmarks/rbm_train.py --device cuda --scale 1 --hidden 100   # one GPU, full shape
    python benchmarks/rbm_train.py --json out.json

Each cell runs in its own subprocess so that peak host memory (ru_maxrss) is that cell's own.
The naive reference trains *the same model* (ternary units, tied engagement weights, the
conditional chain for the preference units, SGD with momentum, l2) the straightforward way:
the whole users x items rating matrix held as a dense float tensor, every batch one-hot encoded
densely, every product dense. Ratios > 1 mean this project is faster / smaller.

Netflix shape: 480,189 users x 17,770 items, ~100M ratings, popularity-skewed (generated);
``--scale`` shrinks the number of users (and so ratings) for machines without a big GPU.
A run on a machine without CUDA and ``--device cuda`` exits cleanly saying so.
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
MOVIELENS = Path(os.environ.get("MOVIELENS_DIR", REPO.parent / "shared/data/movielens-100k"))


def load_dataset(name: str, scale: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, int]:
    """Integer (user, item, rating) arrays and the shape."""
    if name == "movielens-100k":
        if (MOVIELENS / "u.data").exists():
            r = read_ratings(MOVIELENS / "u.data")
            users, u = np.unique(r.users, return_inverse=True)
            items, i = np.unique(r.items, return_inverse=True)
            return u, i, r.values, len(users), len(items)
        u, i, v = generate_interactions(943, 1682, 106.0, seed=0)
        return u, i, v, 943, 1682
    n_users = max(int(NETFLIX_USERS * scale), 100)
    u, i, v = generate_interactions(n_users, NETFLIX_ITEMS, NETFLIX_PER_USER, n_groups=32,
                                    zipf=1.1, seed=0)
    return u, i, v, n_users, NETFLIX_ITEMS


def to_ratings(u, i, v) -> Ratings:
    # Integer ids as strings: the engine's public input type.
    return Ratings(u.astype(str).astype(object), i.astype(str).astype(object),
                   v.astype(np.float32), np.zeros(len(v), dtype=np.int64))


# -- this project -------------------------------------------------------------------------------

def run_project(u, i, v, config: RBMConfig, epochs: int) -> dict:
    model = RBMRecommender(config.replace(epochs=epochs + 1))
    history = model.fit(to_ratings(u, i, v), verbose=0)
    seconds = history.history["epoch_seconds"][1:]  # the first epoch warms up
    return {"epoch_seconds": float(np.median(seconds))}


# -- the naive reference ------------------------------------------------------------------------

def run_naive(u, i, v, n_users, n_items, config: RBMConfig, epochs: int, device) -> dict:
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
    for _epoch in range(epochs + 1):
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
    return {"epoch_seconds": float(np.median(times[1:]))}


# -- data-parallel scaling ----------------------------------------------------------------------

def _ddp_rank(rank: int, world: int, port: int, dataset: str, scale: float, hidden: int,
              preference: int, epochs: int, out: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    u, i, v, _, _ = load_dataset(dataset, scale)
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


# -- one cell in a subprocess -------------------------------------------------------------------

def cell(args) -> dict:
    device = torch.device(args.device)
    torch.manual_seed(0)
    u, i, v, n_users, n_items = load_dataset(args.dataset, args.scale)
    config = RBMConfig(n_hidden=args.hidden, n_preference_hidden=args.preference_hidden,
                       batch_size=args.batch_size, device=args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.cuda.reset_peak_memory_stats()
    if args.impl == "project":
        out = run_project(u, i, v, config, args.epochs)
    else:
        out = run_naive(u, i, v, n_users, n_items, config, args.epochs, device)
    out.update({
        "users": int(n_users), "items": int(n_items), "ratings": int(len(v)),
        "ratings_per_s": len(v) / out["epoch_seconds"],
        "peak_host_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_device_mb": (torch.cuda.max_memory_allocated() / 2**20
                           if device.type == "cuda" else 0.0),
    })
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
    parser.add_argument("--scale", type=float, default=None,
                        help="share of Netflix's users (default 1 on CUDA, 0.01 on CPU)")
    parser.add_argument("--hidden", type=int, default=100, help="engagement hidden units")
    parser.add_argument("--preference-hidden", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs (after 1 warm-up)")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="users per batch (default 32 on CPU, 4096 on CUDA)")
    parser.add_argument("--datasets", default="movielens-100k,netflix-shape")
    parser.add_argument("--skip-naive", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
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
    if args.batch_size is None:
        # Small batches suit MovieLens-sized data; a GPU needs large ones to fill it.
        args.batch_size = 4096 if args.device.startswith("cuda") else 32
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.distributed:
        return scaling(args)
    if args.cell:
        args.impl, args.dataset = args.cell
        print(json.dumps(cell(args)))
        return 0

    results = []
    for dataset in args.datasets.split(","):
        row = {"dataset": dataset}
        for impl in ("project", "naive"):
            if impl == "naive" and args.skip_naive:
                continue
            cmd = [sys.executable, __file__, "--cell", impl, dataset, "--device", args.device,
                   "--scale", str(args.scale), "--hidden", str(args.hidden),
                   "--preference-hidden", str(args.preference_hidden),
                   "--epochs", str(args.epochs), "--batch-size", str(args.batch_size)]
            if args.threads:
                cmd += ["--threads", str(args.threads)]
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                print(proc.stderr[-2000:], file=sys.stderr)
                return proc.returncode
            row[impl] = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append(row)

    device_name = (torch.cuda.get_device_name() if args.device.startswith("cuda")
                   else f"CPU x{os.cpu_count()} ({torch.get_num_threads()} torch threads)")
    print(f"device: {device_name}; torch {torch.__version__}; hidden {args.hidden} engagement "
          f"+ {args.preference_hidden} preference; CD-1; batch {args.batch_size}; "
          f"scale {args.scale:g}")
    header = (f"{'dataset':<16}{'users':>9}{'items':>7}{'ratings':>11} | {'s/epoch':>9}"
              f"{'ratings/s':>12}{'host MB':>9}{'dev MB':>8} | {'naive s/ep':>10}"
              f"{'host MB':>9} | {'speed-up':>8}{'mem ratio':>10}")
    print(header)
    print("-" * len(header))
    for row in results:
        p = row["project"]
        n = row.get("naive")
        line = (f"{row['dataset']:<16}{p['users']:>9}{p['items']:>7}{p['ratings']:>11} | "
                f"{p['epoch_seconds']:>9.3f}{p['ratings_per_s']:>12,.0f}{p['peak_host_mb']:>9.0f}"
                f"{p['peak_device_mb']:>8.0f} | ")
        if n:
            line += (f"{n['epoch_seconds']:>10.3f}{n['peak_host_mb']:>9.0f} | "
                     f"{n['epoch_seconds'] / p['epoch_seconds']:>7.2f}x"
                     f"{n['peak_host_mb'] / p['peak_host_mb']:>9.2f}x")
        print(line)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"device": device_name, "args": vars(args) | {
            "json": str(args.json)}, "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
