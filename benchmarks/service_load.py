"""Load benchmark of the HTTP service (a benchmark, not a test: it prints a table).

Starts ``recommender serve``-equivalent uvicorn processes on loopback over a
MovieLens-100k-sized store and model (943 users x 1682 items x ~100k ratings, generated, or
../shared/data/movielens-100k when present), drives them with httpx async clients at bounded
concurrency, and prints requests/s and p50/p99 latency for:

  * GET /healthz                              the ceiling: a trivial route of the same app
  * GET /v1/users/{id}/recommendations?k=10   fold-in scoring from the user's current ratings
  * POST /v1/ratings (batches)                ingest, ratings/s, into SQLite and PostgreSQL

Targets on 2 cores: recommendations p99 <= 25 ms at 32 clients and >= 30 % of the trivial
route's requests/s; ingest >= 20,000 ratings/s into PostgreSQL.

    .venv/bin/python benchmarks/service_load.py [--duration 10] [--concurrency 32] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recommender import store  # noqa: E402
from recommender.store import testing  # noqa: E402

MOVIELENS = REPO.parent / "shared" / "data" / "movielens-100k"


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    ratings_per_request: int = 0
    errors: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def load_ratings(args: argparse.Namespace):
    from recommender.data import generate_ratings, read_ratings

    if not args.generated and (MOVIELENS / "u.data").exists():
        return read_ratings(MOVIELENS / "u.data"), f"MovieLens-100k ({MOVIELENS})"
    ratings = generate_ratings(n_users=943, n_items=1682, ratings_per_user=106, seed=0)
    return ratings, "generated, MovieLens-100k shaped"


def fill(url: str, ratings) -> None:
    engine = store.make_engine(url)
    sessions = store.make_session_factory(engine)
    try:
        for start in range(0, len(ratings), 10_000):
            rows = [
                store.RatingRow(str(u), str(i), float(v), int(t))
                for u, i, v, t in zip(
                    ratings.users[start : start + 10_000],
                    ratings.items[start : start + 10_000],
                    ratings.values[start : start + 10_000],
                    ratings.timestamps[start : start + 10_000],
                    strict=True,
                )
            ]
            with sessions() as session:
                store.upsert_ratings(session, ratings=rows)
                session.commit()
    finally:
        engine.dispose()


def train(url: str, model_dir: Path, epochs: int) -> str:
    from recommender.service import Settings
    from recommender.service.jobs import JobWorker

    settings = Settings(
        database_url=url, model_dir=model_dir, train_config={"epochs": epochs, "device": "cpu"}
    )
    engine = store.make_engine(url)
    sessions = store.make_session_factory(engine)
    try:
        with sessions() as session:
            job, _ = store.enqueue_job(session, params={})
        JobWorker(sessions, settings).run_once()
        with sessions() as session:
            finished = store.get_job(session, job_id=job.id)
            if finished.status != "succeeded":
                raise SystemExit(f"training failed: {finished.error}")
            return finished.model_version
    finally:
        engine.dispose()


class Server:
    """uvicorn in a child process, so client and server do not share one GIL."""

    def __init__(self, url: str, model_dir: Path, workers: int, torch_threads: int) -> None:
        self.port = free_port()
        env = os.environ | {
            "RECOMMENDER_DATABASE_URL": url,
            "RECOMMENDER_MODEL_DIR": str(model_dir),
            "RECOMMENDER_RUN_WORKER": "false",
            "RECOMMENDER_TORCH_THREADS": str(torch_threads),
            "RECOMMENDER_DB_POOL_SIZE": "20",
        }
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "--factory",
                "recommender.service.app:create_app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=REPO,
        )
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                ready = httpx.get(self.base + "/readyz", timeout=1)
                if ready.status_code == 200 and ready.json().get("model_version"):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise SystemExit("the server did not become ready")
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def drive(
    base: str,
    name: str,
    make_request,
    concurrency: int,
    duration: float,
    ratings_per_request: int = 0,
) -> Result:
    latencies: list[float] = []
    errors = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=30) as client:
        # Warm up connections and caches.
        await asyncio.gather(*(make_request(client, n) for n in range(concurrency)))
        stop_at = time.perf_counter() + duration
        counter = iter(range(10**9))

        async def loop() -> None:
            nonlocal errors
            while time.perf_counter() < stop_at:
                n = next(counter)
                start = time.perf_counter()
                response = await make_request(client, n)
                latencies.append((time.perf_counter() - start) * 1000)
                if response.status_code != 200:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Result(name, len(latencies), seconds, latencies, ratings_per_request, errors)


def ingest_request(batch: int, offset: int, n_users: int, n_items: int):
    def make(client: httpx.AsyncClient, n: int):
        rng = random.Random(n + offset)
        rows = [
            {
                "user_id": f"load{rng.randrange(n_users)}",
                "item_id": f"item{rng.randrange(n_items)}",
                "rating": rng.randint(1, 5),
                "timestamp": 1_700_000_000 + n,
            }
            for _ in range(batch)
        ]
        return client.post("/v1/ratings", json={"ratings": rows})

    return make


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--batch", type=int, default=1000, help="ratings per POST in ingest")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs for the model")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--generated", action="store_true", help="ignore MovieLens if present")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    ratings, source = load_ratings(args)
    users = sorted(set(ratings.users.tolist()))
    tmp = Path(tempfile.mkdtemp(prefix="recommender-bench-"))
    model_dir = tmp / "models"
    databases = {"sqlite": testing.create_sqlite_database(tmp)}
    if not args.skip_postgres:
        reason = testing.postgres_unreachable_reason()
        if reason is None:
            databases["postgresql"] = testing.create_postgres_database("recommender_bench")
        else:
            print(f"PostgreSQL skipped: {reason}")

    results: list[tuple[str, Result]] = []
    try:
        print(
            f"data: {len(ratings)} ratings, {len(users)} users, {ratings.n_items} items ({source})"
        )
        for kind, url in databases.items():
            t = time.perf_counter()
            fill(url, ratings)
            print(f"[{kind}] loaded store in {time.perf_counter() - t:.1f} s")
            if kind == "sqlite":
                t = time.perf_counter()
                version = train(url, model_dir, args.epochs)
                print(f"[{kind}] trained model {version} in {time.perf_counter() - t:.1f} s")
            else:
                _copy_active_model(databases["sqlite"], url)
            server = Server(url, model_dir, args.workers, args.torch_threads)
            try:

                def recs(client: httpx.AsyncClient, n: int):
                    return client.get(f"/v1/users/{users[n % len(users)]}/recommendations?k=10")

                def trivial(client: httpx.AsyncClient, n: int):
                    return client.get("/healthz")

                phases = [("GET /healthz (ceiling)", trivial, 0)]
                phases.append(("GET recommendations k=10", recs, 0))
                phases.append(
                    (
                        f"POST ratings x{args.batch}",
                        ingest_request(args.batch, hash(kind) % 1000, 5000, 1682),
                        args.batch,
                    )
                )
                for name, make, per in phases:
                    result = asyncio.run(
                        drive(server.base, name, make, args.concurrency, args.duration, per)
                    )
                    results.append((kind, result))
                    print(
                        f"[{kind}] {name}: {result.rps:.0f} req/s, p50 {result.pct(50):.1f} ms, "
                        f"p99 {result.pct(99):.1f} ms, errors {result.errors}"
                    )
            finally:
                server.stop()
    finally:
        if "postgresql" in databases:
            testing.drop_postgres_database(databases["postgresql"])

    report(results, args, source)


def _copy_active_model(source_url: str, target_url: str) -> None:
    """Register the model trained on the SQLite copy in the PostgreSQL copy (same data)."""
    src = store.make_engine(source_url)
    dst = store.make_engine(target_url)
    try:
        with store.make_session_factory(src)() as s:
            version = store.active_version(s)
            model = store.get_model(s, version=version)
            fields = {
                c: getattr(model, c)
                for c in (
                    "params",
                    "metrics",
                    "n_users",
                    "n_items",
                    "n_ratings",
                    "training_seconds",
                )
            }
        with store.make_session_factory(dst)() as d:
            job, _ = store.enqueue_job(d, params={})
            store.claim_next_job(d, worker_id="benchmark")
            store.finish_job(d, job_id=job.id, version=version, **fields)
    finally:
        src.dispose()
        dst.dispose()


def report(results: list[tuple[str, Result]], args: argparse.Namespace, source: str) -> None:
    cpu = platform.processor() or platform.machine()
    print()
    print(
        f"machine: {platform.node()} {cpu}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; {args.concurrency} concurrent clients, "
        f"{args.workers} server worker(s), {args.duration:g} s per phase; data: {source}"
    )
    header = f"{'database':<11}{'route':<28}{'req/s':>9}{'ratings/s':>11}{'p50 ms':>8}{'p99 ms':>8}"
    print(header)
    print("-" * len(header))
    ceiling: dict[str, float] = {}
    rows = []
    for kind, r in results:
        if "healthz" in r.name:
            ceiling[kind] = r.rps
        per_s = f"{r.rps * r.ratings_per_request:,.0f}" if r.ratings_per_request else "-"
        print(f"{kind:<11}{r.name:<28}{r.rps:>9,.0f}{per_s:>11}{r.pct(50):>8.1f}{r.pct(99):>8.1f}")
        rows.append(
            {
                "database": kind,
                "route": r.name,
                "requests_per_s": r.rps,
                "ratings_per_s": r.rps * r.ratings_per_request if r.ratings_per_request else None,
                "p50_ms": r.pct(50),
                "p99_ms": r.pct(99),
                "errors": r.errors,
            }
        )
    print()
    for kind, r in results:
        if r.name.startswith("GET recommendations"):
            ratio = r.rps / ceiling[kind]
            print(
                f"[{kind}] recommendations: {ratio:.0%} of the trivial route's req/s "
                f"(target >= 30%), p99 {r.pct(99):.1f} ms (target <= 25 ms): "
                f"{'OK' if ratio >= 0.3 and r.pct(99) <= 25 else 'MISSED'}"
            )
        if r.ratings_per_request and kind == "postgresql":
            rate = r.rps * r.ratings_per_request
            print(
                f"[{kind}] ingest {rate:,.0f} ratings/s (target >= 20,000): "
                f"{'OK' if rate >= 20_000 else 'MISSED'}"
            )
    if args.json:
        args.json.write_text(
            json.dumps(
                {"results": rows, "source": source, "concurrency": args.concurrency}, indent=2
            )
        )


if __name__ == "__main__":
    main()
