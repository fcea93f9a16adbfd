"""Warm start (issue 13, item 6): a few epochs from yesterday's model beside a cold retrain.

    python benchmarks/warm_start.py                       # MovieLens-100k (generated without it)
    python benchmarks/warm_start.py --epochs 1 2 3 5 --threads 1 --repeats 3 --json out.json

The measurement, on MovieLens-100k (``MOVIELENS_DIR``):

1. Hold out 25 % of each user's ratings (the ``recommender evaluate`` split, seed 42). No model
   below ever sees them; every model is scored on them the same way (``evaluate_model``: fold
   in the user's other ratings, top-10 excluding them).
2. Of the other 75 %, the ratings before the 90th percentile of time are "yesterday": the
   *base* model is a cold fit on them (the model a deployment is serving). The last 10 % by
   time bring new users and new items.
3. Today, on all of the 75 %: a *cold* retrain (the configured epochs, 30 by default) beside
   *warm* starts from the base model (``fit(initial_model=base)``) for a few epochs each.

Times are the fits' own wall-clock seconds (the base model already exists in a deployment, so
it is not counted). Target: the warm start within 2 % of the cold retrain's P@10 and nDCG@10
in <= 1/4 of its time. Ratios are against the cold retrain of the same seed measured in the same
run; each seed (``--seeds``) repeats the whole comparison, and the verdict is on the mean ratio
over the seeds, because one seed's P@10 moves by 1-2 % (the size of the margin).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recommender.data import generate_ratings, read_ratings, split_per_user  # noqa: E402
from recommender.data.ratings import deduplicate  # noqa: E402
from recommender.evaluation import evaluate_model  # noqa: E402
from recommender.rbm import RBMConfig, RBMRecommender  # noqa: E402

MOVIELENS = Path(os.environ.get("MOVIELENS_DIR", REPO.parent / "shared/data/movielens-100k"))


def load() -> tuple[object, str]:
    if (MOVIELENS / "u.data").exists():
        return read_ratings(MOVIELENS / "u.data"), "MovieLens-100k"
    return generate_ratings(n_users=943, n_items=1682, ratings_per_user=106, seed=0), (
        "generated (MovieLens-100k not found)")


def fit(train, config: RBMConfig, initial=None) -> tuple[RBMRecommender, float]:
    model = RBMRecommender(config)
    started = time.perf_counter()
    model.fit(train, verbose=0, initial_model=initial)
    return model, time.perf_counter() - started


def run_seed(train, test, early, seed: int, epochs_list: list[int], repeats: int) -> list[dict]:
    """Base, cold and warm fits with one seed; a row per model with its ratios to the cold."""
    config = RBMConfig(device="cpu", seed=seed)
    base, base_s = fit(early, config)
    # Every fit is seeded, so a repeat fits the same model again: the repeats only time it.
    # They run in rounds (cold, warm 1, warm 2, ... then again) so that every fit samples the
    # same stretches of a busy machine's load; each fit's time is its median.
    fits = [("cold", config, None)] + [(f"warm {e}", config.replace(epochs=e), base)
                                       for e in epochs_list]
    models: dict[str, RBMRecommender] = {}
    times: dict[str, list[float]] = {name: [] for name, _, _ in fits}
    for round_ in range(repeats):
        for name, cfg, initial in fits:
            model, seconds = fit(train, cfg, initial)
            models.setdefault(name, model)
            times[name].append(seconds)
        print(f"  seed {seed} round {round_ + 1}: " + ", ".join(
            f"{name} {t[-1]:.1f} s" for name, t in times.items()), flush=True)
    median = {name: float(np.median(t)) for name, t in times.items()}
    rows = []

    def row(name: str, model: RBMRecommender, seconds: float | None, epochs: int) -> None:
        m = evaluate_model(model, train, test, k=10)
        rows.append({"seed": seed, "model": name, "epochs": epochs, "seconds": seconds,
                     "precision": m["precision"], "ndcg": m["ndcg"],
                     "like_accuracy": m["like_accuracy"]})

    row("cold retrain on all", models["cold"], median["cold"], config.epochs)
    row("base (yesterday's, not retrained)", base, None, config.epochs)
    for epochs in epochs_list:
        row(f"warm start, {epochs} epoch{'s' if epochs > 1 else ''}", models[f"warm {epochs}"],
            median[f"warm {epochs}"], epochs)
    cold = rows[0]
    for r in rows:
        r["time_ratio"] = None if r["seconds"] is None else r["seconds"] / cold["seconds"]
        r["precision_ratio"] = r["precision"] / cold["precision"]
        r["ndcg_ratio"] = r["ndcg"] / cold["ndcg"]
    print(f"  seed {seed}: base model fit {base_s:.1f} s (not counted)", flush=True)
    return rows


def verdict(time_ratio: float | None, p_ratio: float, n_ratio: float, model: str) -> str:
    if not model.startswith("warm") or time_ratio is None:
        return ""
    met = p_ratio >= 0.98 and n_ratio >= 0.98 and time_ratio <= 0.25
    return "met" if met else "missed"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 2, 3, 5, 10],
                        help="warm-start epoch counts to measure")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--time-fraction", type=float, default=0.9,
                        help="share of the training ratings (by time) the base model saw")
    parser.add_argument("--repeats", type=int, default=3,
                        help="time each cold and warm fit this many times (median)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3],
                        help="model seeds: one P@10 differs by ~1-2 %% from seed to seed, the "
                             "size of the target's margin, so the verdict is on the mean ratio")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    ratings, source = load()
    ratings = deduplicate(ratings)
    train, test = split_per_user(ratings, test_fraction=0.25, seed=42)
    cutoff = np.quantile(train.timestamps, args.time_fraction)
    early = train.subset(train.timestamps < cutoff)
    new_users = len(set(train.users.tolist()) - set(early.users.tolist()))
    new_items = len(set(train.items.tolist()) - set(early.items.tolist()))
    print(f"{source}: {len(ratings)} ratings; evaluation: 25 % of each user held out "
          f"({len(test)}); base model on the first {args.time_fraction:.0%} of the other "
          f"{len(train)} by time ({len(early)}); the rest brings {new_users} new users and "
          f"{new_items} new items; torch threads {args.threads}; seeds {args.seeds}",
          flush=True)

    rows = [r for seed in args.seeds
            for r in run_seed(train, test, early, seed, args.epochs, args.repeats)]

    header = (f"{'model':<36} {'seed':>5} {'epochs':>6} {'train s':>8} {'time/cold':>9} "
              f"{'P@10':>6} {'/cold':>6} {'nDCG@10':>8} {'/cold':>6} {'like acc':>8}  target")
    print()
    print(header)
    print("-" * len(header))
    for r in rows:
        seconds = "-" if r["seconds"] is None else f"{r['seconds']:.1f}"
        share = "-" if r["time_ratio"] is None else f"{r['time_ratio']:.3f}"
        print(f"{r['model']:<36} {r['seed']:>5} {r['epochs']:>6} {seconds:>8} {share:>9} "
              f"{r['precision']:>6.3f} {r['precision_ratio']:>6.3f} {r['ndcg']:>8.3f} "
              f"{r['ndcg_ratio']:>6.3f} {r['like_accuracy']:>8.3f}  "
              f"{verdict(r['time_ratio'], r['precision_ratio'], r['ndcg_ratio'], r['model'])}")
    print()
    print(f"{'mean over seeds':<36} {'epochs':>6} {'time/cold':>9} {'P@10/cold':>10} "
          f"{'nDCG/cold':>10}  target")
    for name in dict.fromkeys(r["model"] for r in rows):
        group = [r for r in rows if r["model"] == name]
        t = None if group[0]["time_ratio"] is None else float(
            np.mean([r["time_ratio"] for r in group]))
        p = float(np.mean([r["precision_ratio"] for r in group]))
        n = float(np.mean([r["ndcg_ratio"] for r in group]))
        print(f"{name:<36} {group[0]['epochs']:>6} {'-' if t is None else f'{t:.3f}':>9} "
              f"{p:>10.3f} {n:>10.3f}  {verdict(t, p, n, name)}")
    print(f"(train s: median of {args.repeats} rounds; target: >= 0.98 of the cold retrain's "
          f"P@10 and nDCG@10 in <= 1/4 of its time, on the mean over the seeds)")
    if args.json:
        args.json.write_text(json.dumps({"source": source, "threads": args.threads,
                                         "seeds": args.seeds, "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
