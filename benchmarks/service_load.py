"""Load benchmark of the HTTP service (a benchmark, not a test: it prints a table).

Starts ``recommender serve``-equivalent uvicorn processes on loopback over a
MovieLens-100k-sized store and model (943 users x 1682 items x ~100k ratings: the real
../shared/data/movielens-100k when present, else generated), drives them from a separate
load-generator process (``wrk`` when installed, else a lean asyncio HTTP/1.1 client in a
child process), and prints requests/s, p50/p99 latency, the server's CPU time per request
and the load generator's own CPU use, for:

  * GET /healthz                              the ceiling: a trivial route of the same app
  * GET /v1/users/{id}/recommendations?k=10   fold-in scoring from the user's current
                                              ratings, cycling over every user; at the full
                                              concurrency and at lower ones
  * GET ...recommendations?k=10&where=genres:G&exclude=a,b,c
                                              the same with a metadata filter and three
                                              excluded ids (filtered before the top k),
                                              in the same rounds as the unfiltered route
  * POST /v1/ratings (batches)                ingest, ratings/s, into SQLite and PostgreSQL

Targets on 2 cores: recommendations p99 <= 25 ms at 32 clients and >= 30 % of the trivial
route's requests/s; a filtered request within 1.5x an unfiltered one (server CPU per
request, and requests/s); ingest >= 20,000 ratings/s into PostgreSQL. By Little's law, 32 clients
always in flight at a p99 of 25 ms need well over 32 / 0.025 = 1,280 requests/s.

The machine is usually shared: the load average at each phase is printed with it; compare
ratios within one run, not absolute numbers across runs. The ceiling and the recommendations
at full concurrency alternate in ``--rounds`` short rounds so that both see the same drift,
and the target ratio is the median of the rounds' paired ratios.

    .venv/bin/python benchmarks/service_load.py [--duration 10] [--rounds 4] [--concurrency 32]
        [--low-concurrency 1 8] [--workers 1 2] [--client auto|wrk|python] [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx
import procstat  # benchmarks/procstat.py (this script's folder is on sys.path)

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from recommender import store  # noqa: E402
from recommender.store import testing  # noqa: E402

MOVIELENS = REPO.parent / "shared" / "data" / "movielens-100k"


@dataclass
class Result:
    database: str
    workers: int
    route: str
    concurrency: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int = 0
    ratings_per_request: int = 0
    client: str = ""
    client_cpu_s: float = float("nan")  # the load generator's own CPU time
    server_cpu_s: float = float("nan")  # every server process together
    load_before: float = float("nan")  # 1-minute load average when the phase started
    load_after: float = float("nan")
    notes: list[str] = field(default_factory=list)
    round_rps: list[float] = field(default_factory=list)  # per round, when interleaved

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def server_us_per_request(self) -> float:
        return self.server_cpu_s / self.requests * 1e6 if self.requests else float("nan")

    @property
    def client_cpu_share(self) -> float:
        """The load generator's CPU use, in cores (1.0 = one core busy all the phase)."""
        return self.client_cpu_s / self.seconds if self.seconds else float("nan")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Data, model, server
# --------------------------------------------------------------------------------------------


def load_ratings(args: argparse.Namespace):
    from recommender.data import generate_ratings, read_ratings

    if not args.generated and (MOVIELENS / "u.data").exists():
        return read_ratings(MOVIELENS / "u.data"), f"MovieLens-100k ({MOVIELENS})"
    ratings = generate_ratings(n_users=943, n_items=1682, ratings_per_user=106, seed=0)
    return ratings, "generated, MovieLens-100k shaped"


FILTER_GENRES = ["Drama", "Comedy", "Action", "Thriller", "Romance"]


def item_genres(ratings) -> dict[str, list[str]]:
    """Each item's genres: MovieLens' own when its item file is there, else one of
    FILTER_GENRES per item (generated data), so that filtered requests have items to keep."""
    from recommender.data import read_item_metadata

    if (MOVIELENS / "u.item").exists() and set(ratings.items[:100].tolist()) <= set(
        read_item_metadata(MOVIELENS / "u.item")
    ):
        return {i: m.get("genres", []) for i, m in read_item_metadata(MOVIELENS / "u.item").items()}
    rng = random.Random(0)
    return {str(i): [rng.choice(FILTER_GENRES)] for i in sorted(set(ratings.items.tolist()))}


def filtered_paths(users: list[str], genres: dict[str, list[str]]) -> list[str]:
    """A filtered request per user: one of FILTER_GENRES and three excluded item ids."""
    rng = random.Random(1)
    items = sorted(genres)
    return [
        f"/v1/users/{u}/recommendations?k=10&where=genres:{FILTER_GENRES[n % len(FILTER_GENRES)]}"
        f"&exclude={','.join(rng.sample(items, 3))}"
        for n, u in enumerate(users)
    ]


def fill(url: str, ratings, genres: dict[str, list[str]] | None = None) -> None:
    engine = store.make_engine(url)
    sessions = store.make_session_factory(engine)
    try:
        if genres:
            with sessions() as session:
                store.upsert_items(
                    session,
                    items=[store.ItemRow(i, metadata={"genres": g}) for i, g in genres.items()],
                )
                session.commit()
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
        with sessions() as session:  # as `recommender import` does after a bulk load
            store.refresh_statistics(session)
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
        with store.unit_of_work(sessions) as session:
            job, _ = store.enqueue_job(session, params={})
        JobWorker(sessions, settings).run_once()
        with sessions() as session:
            finished = store.get_job(session, job_id=job.id)
            if finished.status != "succeeded":
                raise SystemExit(f"training failed: {finished.error}")
            return finished.model_version
    finally:
        engine.dispose()


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
        with store.unit_of_work(store.make_session_factory(dst)) as d:
            job, _ = store.enqueue_job(d, params={})
            store.claim_next_job(d, worker_id="benchmark")
            store.finish_job(d, job_id=job.id, version=version, **fields)
    finally:
        src.dispose()
        dst.dispose()


class Server:
    """uvicorn in child processes (``--workers N``), as ``recommender serve`` runs it."""

    def __init__(self, url: str, model_dir: Path, workers: int, torch_threads: int) -> None:
        self.port = free_port()
        self.workers = workers
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
        deadline = time.monotonic() + 90
        ready = 0
        # With several workers, each answers on its own: wait until many answers in a row
        # say ready (the kernel spreads connections over the workers).
        while ready < 10 * workers:
            try:
                response = httpx.get(self.base + "/readyz", timeout=2)
                ok = response.status_code == 200 and response.json().get("model_version")
                ready = ready + 1 if ok else 0
            except httpx.HTTPError:
                ready = 0
            if time.monotonic() > deadline or self.process.poll() is not None:
                self.stop()
                raise SystemExit("the server did not become ready")
            if ready == 0:
                time.sleep(0.2)

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server and every process under it (Linux)."""
        return sum(procstat.cpu_seconds(pid)
                   for pid in procstat.descendants(self.process.pid))

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()


# --------------------------------------------------------------------------------------------
# Load generators: wrk (C, event-driven), or a lean asyncio client in a child process
# --------------------------------------------------------------------------------------------


@dataclass
class Load:
    """What to send: ``paths`` cycled (GET), or ``bodies`` cycled (POST to ``paths[0]``)."""

    paths: list[str]
    bodies: list[str] | None = None


def _lua_string(text: str) -> str:
    level = "=" * 3
    while f"]{level}]" in text:
        level += "="
    return f"[{level}[{text}]{level}]"


WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d, "
    .. "\\"errors\\": %d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status))
end
"""


def run_wrk(base: str, load: Load, concurrency: int, duration: float, tmp: Path) -> dict:
    script = tmp / "load.lua"
    lines = ["local n = 0"]
    if load.bodies is None:
        lines.append("local paths = {" + ",".join(_lua_string(p) for p in load.paths) + "}")
        lines.append(
            'request = function() n = n + 1; return wrk.format("GET", paths[(n % #paths) + 1]) end'
        )
    else:
        lines.append("local bodies = {" + ",".join(_lua_string(b) for b in load.bodies) + "}")
        lines.append('wrk.headers["Content-Type"] = "application/json"')
        lines.append(
            "request = function() n = n + 1; "
            f'return wrk.format("POST", {_lua_string(load.paths[0])}, nil, '
            "bodies[(n % #bodies) + 1]) end"
        )
    script.write_text("\n".join(lines) + WRK_DONE)
    command = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "30s",
        "-s",
        str(script),
        base,
    ]
    out = _run_measured(command)
    match = re.search(r"WRK_JSON (\{.*\})", out["stdout"])
    if match is None:
        raise SystemExit(f"wrk failed:\n{out['stdout']}\n{out['stderr']}")
    data = json.loads(match.group(1))
    return {
        "requests": data["requests"],
        "seconds": data["duration_us"] / 1e6,
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "errors": data["errors"],
        "client_cpu_s": out["cpu_s"],
    }


def run_python_client(base: str, load: Load, concurrency: int, duration: float) -> dict:
    spec = {
        "base": base,
        "paths": load.paths,
        "bodies": load.bodies,
        "concurrency": concurrency,
        "duration": duration,
    }
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(spec, handle)
    try:
        out = _run_measured([sys.executable, __file__, "--client-process", handle.name])
    finally:
        os.unlink(handle.name)
    match = re.search(r"CLIENT_JSON (\{.*\})", out["stdout"])
    if match is None:
        raise SystemExit(f"the load client failed:\n{out['stdout']}\n{out['stderr']}")
    return json.loads(match.group(1)) | {"client_cpu_s": out["cpu_s"]}


def _run_measured(command: list[str]) -> dict:
    """Run ``command``; its output and the CPU time it used (user + system)."""
    with tempfile.TemporaryFile("w+") as stdout, tempfile.TemporaryFile("w+") as stderr:
        process = subprocess.Popen(command, stdout=stdout, stderr=stderr, cwd=REPO)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        stdout.seek(0)
        stderr.seek(0)
        return {
            "stdout": stdout.read(),
            "stderr": stderr.read(),
            "cpu_s": usage.ru_utime + usage.ru_stime,
        }


def client_process(spec_path: str) -> None:
    """The fallback load generator: raw HTTP/1.1 keep-alive over asyncio streams (uvloop if
    installed), closed loop, ``concurrency`` connections; prints its results as JSON."""
    spec = json.loads(Path(spec_path).read_text())
    host, port = spec["base"].removeprefix("http://").split(":")
    requests: list[bytes] = []
    if spec["bodies"] is None:
        for path in spec["paths"]:
            requests.append(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    else:
        for body in spec["bodies"]:
            data = body.encode()
            head = (
                f"POST {spec['paths'][0]} HTTP/1.1\r\nHost: {host}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
            )
            requests.append(head.encode() + data)

    async def main() -> dict:
        latencies: list[float] = []
        errors = 0
        counter = iter(range(10**12))
        stop_at = time.perf_counter() + spec["duration"]

        async def connection() -> None:
            nonlocal errors
            reader, writer = await asyncio.open_connection(host, int(port))
            try:
                while time.perf_counter() < stop_at:
                    request = requests[next(counter) % len(requests)]
                    start = time.perf_counter()
                    writer.write(request)
                    head = await reader.readuntil(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n"):
                        if line[:15].lower() == b"content-length:":
                            length = int(line[15:])
                    await reader.readexactly(length)
                    latencies.append(time.perf_counter() - start)
                    if not head.startswith(b"HTTP/1.1 2"):
                        errors += 1
            finally:
                writer.close()

        started = time.perf_counter()
        await asyncio.gather(*(connection() for _ in range(spec["concurrency"])))
        seconds = time.perf_counter() - started
        latencies.sort()

        def pct(q: float) -> float:
            if not latencies:
                return float("nan")
            return latencies[min(len(latencies) - 1, int(q / 100 * len(latencies)))] * 1000

        return {
            "requests": len(latencies),
            "seconds": seconds,
            "p50_ms": pct(50),
            "p99_ms": pct(99),
            "errors": errors,
        }

    if importlib.util.find_spec("uvloop") is not None:
        import uvloop

        result = uvloop.run(main())
    else:
        result = asyncio.run(main())
    print("CLIENT_JSON " + json.dumps(result))


def drive(
    server: Server,
    *,
    database: str,
    route: str,
    load: Load,
    concurrency: int,
    duration: float,
    client: str,
    tmp: Path,
    ratings_per_request: int = 0,
) -> Result:
    load_before = os.getloadavg()[0]
    cpu_before = server.cpu_seconds()
    if client == "wrk":
        raw = run_wrk(server.base, load, concurrency, duration, tmp)
    else:
        raw = run_python_client(server.base, load, concurrency, duration)
    server_cpu = server.cpu_seconds() - cpu_before
    return Result(
        database=database,
        workers=server.workers,
        route=route,
        concurrency=concurrency,
        requests=raw["requests"],
        seconds=raw["seconds"],
        p50_ms=raw["p50_ms"],
        p99_ms=raw["p99_ms"],
        errors=raw["errors"],
        ratings_per_request=ratings_per_request,
        client=client,
        client_cpu_s=raw["client_cpu_s"],
        server_cpu_s=server_cpu,
        load_before=load_before,
        load_after=os.getloadavg()[0],
    )


def ingest_bodies(batch: int, n_bodies: int, seed: int, n_users: int, n_items: int) -> list[str]:
    rng = random.Random(seed)
    bodies = []
    for n in range(n_bodies):
        rows = [
            {
                "user_id": f"load{rng.randrange(n_users)}",
                "item_id": f"item{rng.randrange(n_items)}",
                "rating": rng.randint(1, 5),
                "timestamp": 1_700_000_000 + n,
            }
            for _ in range(batch)
        ]
        bodies.append(json.dumps({"ratings": rows}))
    return bodies


def warm_up(server: Server, paths: list[str]) -> None:
    """Touch every user once per worker (first torch calls, caches, pooled connections)."""
    with httpx.Client(base_url=server.base, timeout=30) as client:
        for path in paths * server.workers:
            client.get(path)


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--rounds",
        type=int,
        default=4,
        help="the ceiling and the recommendations alternate this many times "
        "(--duration split between the rounds); the target ratio is the median round's",
    )
    parser.add_argument(
        "--low-concurrency",
        type=int,
        nargs="*",
        default=[1, 8],
        help="also measure recommendations at these concurrencies",
    )
    parser.add_argument("--batch", type=int, default=1000, help="ratings per POST in ingest")
    parser.add_argument("--ingest-concurrency", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=2, help="training epochs for the model")
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1], help="uvicorn worker processes (e.g. 1 2)"
    )
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument(
        "--client",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk when installed (auto), or the lean asyncio client",
    )
    parser.add_argument("--generated", action="store_true", help="ignore MovieLens if present")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true", help="serve PostgreSQL only")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument(
        "--no-filtered",
        dest="filtered",
        action="store_false",
        help="leave out the filtered recommendations (where= and exclude=)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--client-process", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client_process:
        client_process(args.client_process)
        return
    client = args.client
    if client == "auto":
        client = "wrk" if shutil.which("wrk") else "python"
    elif client == "wrk" and not shutil.which("wrk"):
        raise SystemExit("--client wrk: wrk is not installed (apt-get install wrk)")

    ratings, source = load_ratings(args)
    users = sorted(set(ratings.users.tolist()))
    rec_paths = [f"/v1/users/{u}/recommendations?k=10" for u in users]
    genres = item_genres(ratings) if args.filtered else None
    filter_paths = filtered_paths(users, genres) if genres else []
    tmp = Path(tempfile.mkdtemp(prefix="recommender-bench-"))
    model_dir = tmp / "models"
    databases = {"sqlite": testing.create_sqlite_database(tmp)}
    if not args.skip_postgres:
        reason = testing.postgres_unreachable_reason()
        if reason is None:
            databases["postgresql"] = testing.create_postgres_database("recommender_bench")
        else:
            print(f"PostgreSQL skipped: {reason}")

    print(
        f"data: {len(ratings)} ratings, {len(users)} users, {ratings.n_items} items ({source}); "
        f"load generator: {client}; load average now {os.getloadavg()[0]:.2f}"
    )
    results: list[Result] = []
    try:
        for kind, url in databases.items():
            t = time.perf_counter()
            fill(url, ratings, genres)
            print(f"[{kind}] loaded store in {time.perf_counter() - t:.1f} s")
            if kind == "sqlite":
                t = time.perf_counter()
                version = train(url, model_dir, args.epochs)
                print(f"[{kind}] trained model {version} in {time.perf_counter() - t:.1f} s")
            else:
                _copy_active_model(databases["sqlite"], url)
            if kind == "sqlite" and args.skip_sqlite:
                continue
            for workers in args.workers:
                results += run_server_phases(
                    args, kind, url, model_dir, workers, rec_paths, client, tmp, filter_paths
                )
    finally:
        if "postgresql" in databases:
            testing.drop_postgres_database(databases["postgresql"])
        shutil.rmtree(tmp, ignore_errors=True)

    report(results, args, source, client)


def run_server_phases(
    args: argparse.Namespace,
    kind: str,
    url: str,
    model_dir: Path,
    workers: int,
    rec_paths: list[str],
    client: str,
    tmp: Path,
    filter_paths: list[str] | None = None,
) -> list[Result]:
    results: list[Result] = []
    server = Server(url, model_dir, workers, args.torch_threads)
    try:
        warm_up(server, rec_paths)
        # The ceiling and the recommendations at full concurrency alternate, round by round,
        # so that both see the same drift of a shared machine; each round's ratio is paired.
        pair = [
            ("GET /healthz (ceiling)", Load(["/healthz"])),
            ("GET recommendations k=10", Load(rec_paths)),
        ]
        if filter_paths:
            warm_up(server, filter_paths)
            pair.append((FILTERED_ROUTE, Load(filter_paths)))
        rounds: dict[str, list[Result]] = {route: [] for route, _ in pair}
        for _ in range(args.rounds):
            for route, load in pair:
                rounds[route].append(
                    drive(
                        server,
                        database=kind,
                        route=route,
                        load=load,
                        concurrency=args.concurrency,
                        duration=args.duration / args.rounds,
                        client=client,
                        tmp=tmp,
                    )
                )
        for route, _ in pair:
            results.append(merge_rounds(rounds[route]))
            _print_phase(results[-1], kind, workers)
        phases: list[tuple[str, Load, int, int]] = []
        for low in args.low_concurrency:
            if low != args.concurrency:
                phases.append(("GET recommendations k=10", Load(rec_paths), low, 0))
        if not args.skip_ingest:
            bodies = ingest_bodies(args.batch, 32, hash(kind) % 1000 + workers, 5000, 1682)
            phases.append(
                (
                    f"POST ratings x{args.batch}",
                    Load(["/v1/ratings"], bodies),
                    args.ingest_concurrency,
                    args.batch,
                )
            )
        for route, load, concurrency, per in phases:
            result = drive(
                server,
                database=kind,
                route=route,
                load=load,
                concurrency=concurrency,
                duration=args.duration,
                client=client,
                tmp=tmp,
                ratings_per_request=per,
            )
            results.append(result)
            _print_phase(result, kind, workers)
    finally:
        server.stop()
    return results


def _print_phase(result: Result, kind: str, workers: int) -> None:
    rounds = (
        f" (rounds: {', '.join(f'{rps:,.0f}' for rps in result.round_rps)} req/s)"
        if len(result.round_rps) > 1
        else ""
    )
    print(
        f"[{kind}, {workers} worker(s)] {result.route} c={result.concurrency}: "
        f"{result.rps:,.0f} req/s{rounds}, p50 {result.p50_ms:.1f} ms, "
        f"p99 {result.p99_ms:.1f} ms, server {result.server_us_per_request:,.0f} us CPU/request, "
        f"client {result.client_cpu_share:.0%} of a core, errors {result.errors}, "
        f"load {result.load_before:.1f}->{result.load_after:.1f}"
    )


def merge_rounds(rounds: list[Result]) -> Result:
    """One result for interleaved rounds of the same phase: totals for counts and CPU time,
    the median round's p50 and p99, and every round's req/s."""
    first = rounds[0]
    return Result(
        database=first.database,
        workers=first.workers,
        route=first.route,
        concurrency=first.concurrency,
        requests=sum(r.requests for r in rounds),
        seconds=sum(r.seconds for r in rounds),
        p50_ms=statistics.median(r.p50_ms for r in rounds),
        p99_ms=statistics.median(r.p99_ms for r in rounds),
        errors=sum(r.errors for r in rounds),
        client=first.client,
        client_cpu_s=sum(r.client_cpu_s for r in rounds),
        server_cpu_s=sum(r.server_cpu_s for r in rounds),
        load_before=first.load_before,
        load_after=rounds[-1].load_after,
        round_rps=[r.rps for r in rounds],
    )


FILTERED_ROUTE = "GET recs filtered k=10"


def report(results: list[Result], args: argparse.Namespace, source: str, client: str) -> None:
    cpu = platform.processor() or platform.machine()
    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    loads = [r.load_before for r in results] + [r.load_after for r in results]
    print()
    print(
        f"machine: {platform.node()} {cpu}, {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()}; server: uvicorn ({loop}, {http}), torch threads "
        f"{args.torch_threads}; load generator: {client} in its own process; "
        f"{args.duration:g} s per phase; data: {source}"
    )
    if loads:
        print(
            f"1-minute load average during the run: {min(loads):.1f} to {max(loads):.1f} "
            f"(other jobs share these cores: absolute numbers move with it, ratios less)"
        )
    header = (
        f"{'database':<11}{'wrk':>4} {'route':<26}{'conc':>5}{'req/s':>8}{'ratings/s':>11}"
        f"{'p50 ms':>8}{'p99 ms':>8}{'srv us/req':>11}{'client':>7}{'load':>6}{'err':>5}"
    )
    print(header.replace("wrk", "wkr"))
    print("-" * len(header))
    for r in results:
        per_s = f"{r.rps * r.ratings_per_request:,.0f}" if r.ratings_per_request else "-"
        print(
            f"{r.database:<11}{r.workers:>4} {r.route:<26}{r.concurrency:>5}{r.rps:>8,.0f}"
            f"{per_s:>11}{r.p50_ms:>8.1f}{r.p99_ms:>8.1f}{r.server_us_per_request:>11,.0f}"
            f"{r.client_cpu_share:>7.0%}{r.load_before:>6.1f}{r.errors:>5}"
        )
    print(
        "(wkr: server worker processes; srv us/req: CPU time of all server processes per "
        "request; client: the load generator's CPU use, share of one core)"
    )
    print()
    ceiling = {
        (r.database, r.workers): r for r in results if "healthz" in r.route
    }  # same app, same run
    for r in results:
        key = (r.database, r.workers)
        where = f"[{r.database}, {r.workers} worker(s)]"
        if r.route.startswith("GET recommendations") and r.concurrency == args.concurrency:
            top = ceiling[key]
            # The median of the rounds' paired ratios (each round measured both routes).
            ratio = statistics.median(
                rps / top_rps for rps, top_rps in zip(r.round_rps, top.round_rps, strict=True)
            )
            cpu_ratio = top.server_us_per_request / r.server_us_per_request
            print(
                f"{where} recommendations at {r.concurrency} clients: {ratio:.0%} of the trivial "
                f"route's req/s (target >= 30%; by server CPU per request {cpu_ratio:.0%}), "
                f"p99 {r.p99_ms:.1f} ms (target <= 25 ms): "
                f"{'OK' if ratio >= 0.3 and r.p99_ms <= 25 else 'MISSED'}"
            )
        if r.ratings_per_request and r.database == "postgresql":
            rate = r.rps * r.ratings_per_request
            print(
                f"{where} ingest {rate:,.0f} ratings/s (target >= 20,000): "
                f"{'OK' if rate >= 20_000 else 'MISSED'}"
            )
    if len(args.workers) > 1:
        for database in dict.fromkeys(r.database for r in results):
            for route in ("GET /healthz (ceiling)", "GET recommendations k=10"):
                rows = {
                    r.workers: r.rps
                    for r in results
                    if r.database == database
                    and r.route == route
                    and r.concurrency == args.concurrency
                }
                if len(rows) > 1:
                    base = rows[min(rows)]
                    scaling = ", ".join(
                        f"{w}: {rps:,.0f} ({rps / base:.2f}x)" for w, rps in rows.items()
                    )
                    print(f"[{database}] {route} req/s by workers: {scaling}")
    plain = {
        (r.database, r.workers): r
        for r in results
        if r.route == "GET recommendations k=10" and r.concurrency == args.concurrency
    }
    for r in results:
        if r.route != FILTERED_ROUTE:
            continue
        base = plain[(r.database, r.workers)]
        slower = statistics.median(b / f for f, b in zip(r.round_rps, base.round_rps, strict=True))
        cpu = r.server_us_per_request / base.server_us_per_request
        print(
            f"[{r.database}, {r.workers} worker(s)] filtered recommendations (where + exclude): "
            f"{slower:.2f}x the unfiltered route's time by req/s (median of paired rounds), "
            f"{cpu:.2f}x its server CPU per request, p99 {r.p99_ms:.1f} ms vs "
            f"{base.p99_ms:.1f} ms (target <= 1.5x): "
            f"{'OK' if max(slower, cpu) <= 1.5 else 'MISSED'}"
        )
    need = args.concurrency / 0.025
    print(
        f"Little's law: {args.concurrency} clients in flight at p99 <= 25 ms need more than "
        f"{need:,.0f} req/s (mean latency = clients / throughput)."
    )
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "source": source,
                    "client": client,
                    "machine": platform.node(),
                    "cpus": os.cpu_count(),
                    "results": [
                        asdict(r)
                        | {
                            "requests_per_s": r.rps,
                            "server_us_per_request": r.server_us_per_request,
                        }
                        for r in results
                    ],
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
