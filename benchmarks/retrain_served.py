"""The model an admin retrain serves, measured through HTTP (issue 13, item 5).

    python benchmarks/retrain_served.py                  # MovieLens-100k, SQLite store
    python benchmarks/retrain_served.py --database-url postgresql+psycopg://...  --threads 1

A model fitted on every rating cannot be scored on ratings it saw, so the measurement is:

1. Split MovieLens-100k per user 75/25 with seed 42: the split ``recommender evaluate`` uses.
2. Reference: ``recommender evaluate`` (``run_protocol``): the RBM fitted on the 75 %, scored
   on the 25 %.
3. Import only the 75 % into a fresh store, start the service (a real uvicorn server), and
   ``POST /v1/admin/retrain`` with the defaults: an evaluation fit (20 % of each user's
   ratings held out, giving the job's metrics) and then the final fit on all of the 75 %,
   which is served. The job's progress is followed over HTTP.
4. Score the served model on the 25 %: ``GET /v1/users/{id}/recommendations?k=10`` for every
   user (the service folds in the user's stored ratings and never returns a rated item).
5. For comparison, the model the retrain used to serve: the evaluation fit's model (fitted on
   80 % of the 75 %), scored on the same 25 %.

Ratios are against the reference measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recommender import store  # noqa: E402
from recommender.data import read_ratings, split_per_user  # noqa: E402
from recommender.data.ratings import deduplicate  # noqa: E402
from recommender.evaluation import evaluate_model, run_protocol  # noqa: E402
from recommender.evaluation.metrics import ranking_metrics  # noqa: E402
from recommender.rbm import RBMConfig, RBMRecommender  # noqa: E402

MOVIELENS = Path(os.environ.get("MOVIELENS_DIR", REPO.parent / "shared/data/movielens-100k"))
TOKEN = "benchmark-admin-token"
ADMIN = {"Authorization": f"Bearer {TOKEN}"}


def serve(settings) -> tuple[str, object, threading.Thread]:
    import socket

    import uvicorn

    from recommender.service import create_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", server, thread


def import_ratings(url: str, ratings) -> None:
    store.upgrade_database(url)
    engine = store.make_engine(url)
    sessions = store.make_session_factory(engine)
    try:
        for start in range(0, len(ratings), 10_000):
            with sessions() as session:
                store.upsert_ratings(session, ratings=store.rating_rows(ratings, start,
                                                                        start + 10_000))
                session.commit()
    finally:
        engine.dispose()


def scores_over_http(base: str, test, k: int) -> dict[str, float]:
    """P@k and nDCG@k of the served lists against each user's held-out items."""
    relevant_items: dict[str, set[str]] = {}
    for user, item in zip(test.users, test.items, strict=True):
        relevant_items.setdefault(user, set()).add(item)
    users = sorted(relevant_items)
    items = sorted(set(test.items.tolist()))
    index = {item: j for j, item in enumerate(items)}
    unknown = len(items)  # a recommended item nobody held out: never relevant
    relevant = torch.zeros(len(users), len(items) + 1, dtype=torch.bool)
    top = torch.full((len(users), k), unknown, dtype=torch.long)
    strategies = set()
    with httpx.Client(base_url=base, timeout=30) as client:
        for row, user in enumerate(users):
            relevant[row, [index[i] for i in relevant_items[user]]] = True
            body = client.get(f"/v1/users/{user}/recommendations", params={"k": k}).json()
            strategies.add(body["strategy"])
            for col, entry in enumerate(body["items"]):
                top[row, col] = index.get(entry["item_id"], unknown)
    m = ranking_metrics(top, relevant, n_relevant=relevant.sum(dim=1))
    return {"precision": float(m["precision"].mean()), "ndcg": float(m["ndcg"].mean()),
            "users": len(users), "strategies": ",".join(sorted(strategies))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary folder")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--k", type=int, default=10)
    args = parser.parse_args()
    if not (MOVIELENS / "u.data").exists():
        print(f"MovieLens-100k not found at {MOVIELENS} (set MOVIELENS_DIR): skipped")
        return
    torch.set_num_threads(args.threads)
    ratings = deduplicate(read_ratings(MOVIELENS / "u.data"))
    train, test = split_per_user(ratings, test_fraction=0.25, seed=42)
    config = RBMConfig(device="cpu")

    print("reference: recommender evaluate (fit on the 75 %) ...", flush=True)
    started = time.perf_counter()
    reference = run_protocol(ratings, k=args.k, seed=42, config=config, verbose=0)
    reference = reference["models"]["rbm"] | {"seconds": time.perf_counter() - started}

    from recommender.service import Settings

    with tempfile.TemporaryDirectory(prefix="retrain-served-") as tmp:
        url = args.database_url or f"sqlite:///{tmp}/store.db"
        import_ratings(url, train)
        settings = Settings(database_url=url, model_dir=Path(tmp) / "models", admin_token=TOKEN,
                            torch_threads=args.threads, train_config={"device": "cpu"},
                            job_poll_interval_s=0.2, model_poll_interval_s=0.5)
        base, server, thread = serve(settings)
        try:
            with httpx.Client(base_url=base, headers=ADMIN, timeout=30) as client:
                started = time.perf_counter()
                job_id = client.post("/v1/admin/retrain").json()["job_id"]
                last = None
                while True:
                    job = client.get(f"/v1/admin/jobs/{job_id}").json()
                    progress = job["progress"]
                    shown = (progress["phase"], progress["epoch"], progress["epochs"])
                    if shown != last and progress["epochs"] and progress["epoch"] % 5 == 0:
                        print(f"  job {job_id}: {job['status']}, phase {progress['phase']}, "
                              f"epoch {progress['epoch']}/{progress['epochs']}", flush=True)
                        last = shown
                    if job["status"] in ("succeeded", "failed"):
                        break
                    time.sleep(0.5)
                job_seconds = time.perf_counter() - started
                if job["status"] != "succeeded":
                    raise SystemExit(f"the retrain failed: {job['error']}")
                version = job["model_version"]
                while client.get("/readyz").json().get("model_version") != version:
                    time.sleep(0.1)
            served = scores_over_http(base, test, args.k)
            artifact = RBMRecommender.load(settings.model_dir / version, device="cpu")
            offline = evaluate_model(artifact, train, test, k=args.k)
        finally:
            server.should_exit = True
            thread.join(timeout=15)

    # What the retrain used to serve: the evaluation fit's model (80 % of each user's 75 %).
    print("the previous design's served model (fit on 80 % of the 75 %) ...", flush=True)
    inner, _ = split_per_user(train, test_fraction=0.2, seed=config.seed)
    previous = RBMRecommender(config)
    previous.fit(inner, verbose=0)
    before = evaluate_model(previous, train, test, k=args.k)

    rows = [
        ("recommender evaluate (fit on the 75 %)", reference["precision"], reference["ndcg"],
         f"{reference['seconds']:.1f}", len(set(train.items.tolist()))),
        ("retrain, served model, over HTTP", served["precision"], served["ndcg"],
         f"{job_seconds:.1f}", artifact.n_items),
        ("retrain, served model, evaluate_model", offline["precision"], offline["ndcg"], "-",
         artifact.n_items),
        ("before: the evaluation fit's model", before["precision"], before["ndcg"], "-",
         previous.n_items),
    ]
    k = args.k
    header = (f"{'model (scored on the 25 % held out)':<40} {f'P@{k}':>6} {'/ref':>6} "
              f"{f'nDCG@{k}':>8} {'/ref':>6} {'items':>6} {'seconds':>8}")
    print()
    print(header)
    print("-" * len(header))
    for name, p, n, seconds, items in rows:
        print(f"{name:<40} {p:>6.3f} {p / reference['precision']:>6.3f} {n:>8.3f} "
              f"{n / reference['ndcg']:>6.3f} {items:>6} {seconds:>8}")
    metrics = job["metrics"]
    print(f"(the job's own held-out metrics, 20 % of each user's 75 %: P@{k} "
          f"{metrics['precision']:.3f}, nDCG@{k} {metrics['ndcg']:.3f}; the job ran both fits "
          f"in {job_seconds:.1f} s; {served['users']} users over HTTP, strategy "
          f"{served['strategies']}; store {url.split(':')[0]}; torch threads {args.threads})")
    gap = np.array([served["precision"] / reference["precision"],
                    served["ndcg"] / reference["ndcg"]])
    print("target (served >= the CLI's figures, within 1 %):",
          "met" if (gap >= 0.99).all() else "missed")


if __name__ == "__main__":
    main()
