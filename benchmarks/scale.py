"""Scale benchmark: a catalogue-sized rating set from file to a served model (prints a table).

Generates ``--ratings`` ratings over ``--users`` x ``--items`` with the project's generator
(Zipf item popularity, log-normal user activity, planted taste groups), writes them as a
MovieLens ``ratings.csv`` and runs every stage of the path in its own child process, so each
stage's peak RSS is its own:

  reference      pandas.read_csv of the same file (plain, default parser): what reading costs
  read           recommender.data.read_ratings (ids as codes, pyarrow parser)
  import sqlite  ``recommender import`` into a fresh SQLite file (one transaction)
  import pg      ``recommender import`` into a fresh PostgreSQL database (COPY + one upsert
                 per chunk, one transaction)
  bad row pg     the same file with one bad row (rating 9) in the middle, into the imported
                 database: the error must name the line and the store must be unchanged
  snapshot       store.snapshot_ratings, what a retrain reads (PostgreSQL and SQLite)
  train          ``--epochs`` CD epochs of the default RBM (the epoch time), then save
  load           RBMRecommender.load of the saved model
  serve          a uvicorn server on the PostgreSQL store with the model active; wrk at
                 ``--concurrency`` clients on GET /healthz (the ceiling) and on
                 GET /v1/users/{id}/recommendations?k=10, alternating in ``--rounds``

Targets for the MovieLens-10M shape (69,878 x 10,677, 10M) on the 2-core machine: read close
to the pandas reference; import into PostgreSQL >= 200k ratings/s and <= 1.5 GB; snapshot
<= 5 s and <= 1.5 GB; an epoch <= 60 s and <= 2 GB; recommendations p99 <= 25 ms and >= 30 %
of the ceiling's requests/s. Timings on a shared machine drift: compare the ratios printed
beside the reference measured in the same run, not absolute numbers across runs.

    nice -n 10 .venv/bin/python benchmarks/scale.py --users 69878 --items 10677 \\
        --ratings 10000000 [--epochs 1] [--duration 10] [--json out.json]

PostgreSQL stages need the server of recommender.store.testing (skipped when unreachable);
the serve stage needs ``wrk`` (skipped when it is not installed).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# benchmarks/procstat.py (this script's folder is on sys.path)
from procstat import cpu_seconds, descendants, status_mb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BAD_RATING = 9  # out of the 1-5 scale: the import must refuse it


def _peak_rss_mb() -> float:
    return status_mb("VmHWM")


def _rss_mb() -> float:
    return status_mb("VmRSS")


# --------------------------------------------------------------------------------------------
# Stages: each runs in a child process (``--stage NAME --state FILE``) and prints one JSON line
# --------------------------------------------------------------------------------------------


def stage_generate(state: dict) -> dict:
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from recommender.data.generate import generate_catalogue

    started = time.perf_counter()
    u, i, r, t = generate_catalogue(state["users"], state["items"], state["ratings"],
                                    seed=state["seed"])
    generated = time.perf_counter() - started
    table = pa.table({"userId": u + 1, "movieId": i + 1, "rating": r.astype(np.float64),
                      "timestamp": t})
    with open(state["file"], "wb") as fh:
        fh.write(b"userId,movieId,rating,timestamp\n")
        pacsv.write_csv(table, fh, pacsv.WriteOptions(include_header=False))
    counts = np.bincount(u)
    megabytes = Path(state["file"]).stat().st_size / 1e6
    return {"seconds": time.perf_counter() - started, "generate_s": generated,
            "n": int(len(r)), "users": int((counts > 0).sum()),
            "items": int(len(np.unique(i))),
            "notes": f"{len(r):,} ratings; per user median {int(np.median(counts))}, "
                     f"max {int(counts.max())}; file {megabytes:,.0f} MB"}


def stage_reference(state: dict) -> dict:
    import pandas as pd

    base = _rss_mb()
    started = time.perf_counter()
    frame = pd.read_csv(state["file"])
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "n": len(frame), "imports_mb": base,
            "notes": "pandas.read_csv(path), default parser"}


def _preload() -> None:
    """Import what the stages use before their clock starts (imports are not the work)."""
    import pandas  # noqa: F401
    import pyarrow.csv  # noqa: F401
    import tqdm.auto  # noqa: F401

    import recommender.service  # noqa: F401  (recommender import reads its Settings)
    import recommender.store.bulk  # noqa: F401


def stage_read(state: dict) -> dict:
    from recommender.data import read_ratings

    _preload()
    base = _rss_mb()
    started = time.perf_counter()
    ratings = read_ratings(state["file"], rating_min=1, rating_max=5)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "n": len(ratings), "imports_mb": base,
            "notes": f"{ratings.n_users:,} users, {ratings.n_items:,} items"}


def _import(state: dict, url: str, path: str) -> dict:
    import typer

    from recommender import store
    from recommender.cli import import_ratings

    _preload()
    base = _rss_mb()
    started = time.perf_counter()
    error = None
    try:
        import_ratings(Path(path), database_url=url, batch_size=state["chunk"])
    except typer.Exit:
        error = "exit"
    seconds = time.perf_counter() - started
    engine = store.make_engine(url)
    try:
        with store.make_session_factory(engine)() as session:
            stored = store.count_ratings(session)
    finally:
        engine.dispose()
    return {"seconds": seconds, "n": stored, "error": error, "imports_mb": base}


def stage_import_sqlite(state: dict) -> dict:
    out = _import(state, state["sqlite_url"], state["file"])
    out["notes"] = f"{out['n']:,} stored"
    return out


def stage_import_pg(state: dict) -> dict:
    out = _import(state, state["pg_url"], state["file"])
    out["notes"] = f"{out['n']:,} stored"
    return out


def stage_bad_row(state: dict) -> dict:
    """Import the file with one bad row in the middle into the imported PostgreSQL store."""
    import contextlib
    import io

    out = {}
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        out = _import(state, state["pg_url"], state["bad_file"])
    message = next((line for line in err.getvalue().splitlines() if line.startswith("error:")),
                   "")
    out["message"] = message
    unchanged = out["n"] == state["imported_pg"]
    named = f":{state['bad_line']}: " in message
    out["notes"] = (f"{'refused' if out['error'] else 'NOT REFUSED'}, line "
                    f"{state['bad_line']:,} {'named' if named else 'NOT NAMED'}, store "
                    f"{'unchanged' if unchanged else 'CHANGED'}")
    out["ok"] = bool(out["error"]) and named and unchanged
    return out


def _snapshot(url: str) -> dict:
    from recommender import store

    _preload()
    engine = store.make_engine(url)
    try:
        base = _rss_mb()
        started = time.perf_counter()
        with store.make_session_factory(engine)() as session:
            ratings = store.snapshot_ratings(session)
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    return {"seconds": seconds, "n": len(ratings), "imports_mb": base,
            "notes": f"{ratings.n_users:,} users, {ratings.n_items:,} items"}


def stage_snapshot_pg(state: dict) -> dict:
    return _snapshot(state["pg_url"])


def stage_snapshot_sqlite(state: dict) -> dict:
    return _snapshot(state["sqlite_url"])


def stage_train(state: dict) -> dict:
    import torch

    from recommender.data import read_ratings
    from recommender.rbm import RBMConfig, RBMRecommender

    # RECOMMENDER_THREADS, not only torch.set_num_threads: fit sets the threads itself
    # (backend.configure_threads), and by default takes one core less per unit of load
    # average, which the previous stages leave at ~1 for a minute after they end.
    os.environ["RECOMMENDER_THREADS"] = str(state["threads"])
    torch.set_num_threads(state["threads"])
    ratings = read_ratings(state["file"])
    base = _rss_mb()
    model = RBMRecommender(RBMConfig(epochs=state["epochs"], device="cpu"))
    started = time.perf_counter()
    model.fit(ratings, verbose=0)
    seconds = time.perf_counter() - started
    epochs = model.history.get("epoch_seconds", [])
    peak = _peak_rss_mb()
    save_started = time.perf_counter()
    model.save(state["model_path"])
    save_seconds = time.perf_counter() - save_started
    size = sum(p.stat().st_size for p in Path(state["model_path"]).iterdir())
    return {"seconds": seconds, "epoch_s": epochs, "n": len(ratings), "imports_mb": base,
            "train_peak_mb": peak, "save_s": save_seconds, "model_mb": size / 1e6,
            "notes": f"{state['epochs']} epoch(s), {model.n_items:,} items, "
                     f"{torch.get_num_threads()} torch thread(s)"}


def stage_load(state: dict) -> dict:
    import torch

    from recommender.rbm import RBMRecommender

    torch.set_num_threads(state["threads"])
    base = _rss_mb()
    started = time.perf_counter()
    model = RBMRecommender.load(state["model_path"], device="cpu")
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "n": model.n_items, "imports_mb": base,
            "notes": f"{model.n_items:,} items"}


STAGES = {
    "generate": stage_generate,
    "reference": stage_reference,
    "read": stage_read,
    "import_sqlite": stage_import_sqlite,
    "import_pg": stage_import_pg,
    "bad_row_pg": stage_bad_row,
    "snapshot_pg": stage_snapshot_pg,
    "snapshot_sqlite": stage_snapshot_sqlite,
    "train": stage_train,
    "load": stage_load,
}


def child(name: str, state_path: str) -> None:
    state = json.loads(Path(state_path).read_text())
    result = STAGES[name](state)
    result.setdefault("peak_mb", _peak_rss_mb())
    print("STAGE_JSON " + json.dumps(result), flush=True)


def run_stage(name: str, state: dict, state_path: Path) -> dict:
    state_path.write_text(json.dumps(state))
    command = [sys.executable, str(Path(__file__).resolve()), "--stage", name,
               "--state", str(state_path)]
    started = time.perf_counter()
    process = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    match = re.search(r"^STAGE_JSON (.*)$", process.stdout, re.MULTILINE)
    if process.returncode != 0 or match is None:
        raise SystemExit(f"stage {name} failed (exit {process.returncode}):\n"
                         f"{process.stdout[-3000:]}\n{process.stderr[-3000:]}")
    result = json.loads(match.group(1))
    result["wall_s"] = time.perf_counter() - started
    return result


# --------------------------------------------------------------------------------------------
# Serving: uvicorn + wrk
# --------------------------------------------------------------------------------------------

WRK_DONE = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRK_JSON {\\"requests\\": %d, \\"duration_us\\": %d, \\"p50_us\\": %d, \\"p99_us\\": %d, "
    .. "\\"errors\\": %d, \\"non2xx\\": %d}\\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def run_wrk(base: str, paths: list[str], concurrency: int, duration: float, tmp: Path) -> dict:
    script = tmp / "paths.lua"
    quoted = ",".join(json.dumps(p) for p in paths)  # JSON strings are valid Lua strings here
    script.write_text(
        "local n = 0\nlocal paths = {" + quoted + "}\n"
        'request = function() n = n + 1; return wrk.format("GET", paths[(n % #paths) + 1]) end\n'
        + WRK_DONE)
    process = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--timeout", "30s",
         "-s", str(script), base], capture_output=True, text=True, check=False)
    match = re.search(r"WRK_JSON (\{.*\})", process.stdout)
    if match is None:
        raise SystemExit(f"wrk failed:\n{process.stdout}\n{process.stderr}")
    data = json.loads(match.group(1))
    seconds = data["duration_us"] / 1e6
    return {"rps": data["requests"] / seconds, "requests": data["requests"],
            "p50_ms": data["p50_us"] / 1000,
            "p99_ms": data["p99_us"] / 1000, "errors": data["errors"] + data["non2xx"]}


def _hwm_mb(pid: int) -> float:
    return status_mb("VmHWM", pid, default=0.0)


def stage_serve(state: dict, args: argparse.Namespace, tmp: Path) -> dict:
    """Register the trained model as active in the store, start uvicorn, drive it with wrk."""
    import socket

    import httpx
    import numpy as np

    from recommender import store

    url = state["serve_url"]
    model_dir = tmp / "models"
    version = "scale-benchmark"
    shutil.copytree(state["model_path"], model_dir / version, dirs_exist_ok=True)
    engine = store.make_engine(url)
    try:
        with store.unit_of_work(store.make_session_factory(engine)) as session:
            if store.get_model(session, version=version) is None:  # a kept workdir has it
                store.register_model(session, version=version, params={}, metrics={},
                                     n_users=state["users"], n_items=state["items"],
                                     n_ratings=state["ratings"], training_seconds=0.0,
                                     activate=True)
    finally:
        engine.dispose()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = os.environ | {"RECOMMENDER_DATABASE_URL": url, "RECOMMENDER_MODEL_DIR": str(model_dir),
                        "RECOMMENDER_RUN_WORKER": "false",
                        "RECOMMENDER_TORCH_THREADS": str(getattr(args, "serve_threads", 1)),
                        "RECOMMENDER_DB_POOL_SIZE": "20"}
    server = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "--factory", "recommender.service.app:create_app",
         "--host", "127.0.0.1", "--port", str(port), "--no-access-log", "--log-level",
         "warning", "--workers", str(getattr(args, "serve_workers", 1))], env=env, cwd=REPO)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                ready = httpx.get(base + "/readyz", timeout=5)
                if ready.status_code == 200 and ready.json().get("model_version") == version:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not become ready with the benchmark model")
            time.sleep(0.5)
        rng = np.random.default_rng(0)
        users = rng.choice(state["users"], size=min(2000, state["users"]), replace=False) + 1
        paths = [f"/v1/users/{u}/recommendations?k=10" for u in users.tolist()]
        with httpx.Client(base_url=base, timeout=60) as client:  # warm: first calls, caches
            for path in paths[:200]:
                client.get(path).raise_for_status()
        ceiling, recs = [], []
        for _ in range(args.rounds):
            ceiling.append(run_wrk(base, ["/healthz"], args.concurrency, args.duration, tmp))
            # The server's CPU time per answer: steadier than requests/s on a shared machine.
            before = sum(cpu_seconds(pid) for pid in descendants(server.pid))
            recs.append(run_wrk(base, paths, args.concurrency, args.duration, tmp))
            spent = sum(cpu_seconds(pid) for pid in descendants(server.pid)) - before
            recs[-1]["cpu_us"] = spent / max(recs[-1]["requests"], 1) * 1e6
        peak = max(_hwm_mb(pid) for pid in descendants(server.pid))
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    ratios = [r["rps"] / c["rps"] for r, c in zip(recs, ceiling, strict=True)]
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())  # 1, 5, 15 min, after the rounds
    return {
        "seconds": float("nan"), "peak_mb": peak, "n": len(paths),
        "healthz_rps": statistics.median(c["rps"] for c in ceiling),
        "rps": statistics.median(r["rps"] for r in recs),
        "p50_ms": statistics.median(r["p50_ms"] for r in recs),
        "p99_ms": statistics.median(r["p99_ms"] for r in recs),
        "ratio": statistics.median(ratios),
        "cpu_us": statistics.median(r["cpu_us"] for r in recs),
        "errors": sum(r["errors"] for r in recs + ceiling), "load": load,
        "rounds": {"healthz": ceiling, "recommendations": recs},
    }


# --------------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------------


def _write_bad_copy(path: Path, target: Path, n_records: int) -> int:
    """Copy ``path`` with its middle record replaced by a bad one; returns that line."""
    line_no = 1 + (n_records + 1) // 2  # line 1 is the header
    with path.open("rb") as src, target.open("wb") as dst:
        for n, line in enumerate(src, start=1):
            if n == line_no:
                user, item = line.split(b",")[:2]
                line = b"%s,%s,%d,0\n" % (user, item, BAD_RATING)
            dst.write(line)
    return line_no


def _postgres_url() -> str | None:
    from recommender.store import testing

    if testing.postgres_unreachable_reason() is not None:
        return None
    return testing.create_postgres_database(prefix="recommender_scale")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=69_878)
    parser.add_argument("--items", type=int, default=10_677)
    parser.add_argument("--ratings", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training")
    parser.add_argument("--chunk", type=int, default=500_000, help="rows per import chunk")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk phase")
    parser.add_argument("--rounds", type=int, default=2, help="alternating wrk rounds")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--serve-workers", type=int, default=1,
                        help="uvicorn worker processes of the serve stage (both routes alike)")
    parser.add_argument("--serve-threads", type=int, default=1,
                        help="torch threads of the serving process (RECOMMENDER_TORCH_THREADS)")
    parser.add_argument("--no-serve", action="store_true", help="skip the HTTP stage")
    parser.add_argument("--no-postgres", action="store_true", help="skip PostgreSQL stages")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the file, databases and model go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the run's directory and PostgreSQL database (printed at "
                             "the end) for --only serve")
    parser.add_argument("--only", choices=["serve"], default=None,
                        help="rerun one stage on the kept run in --workdir (made by --keep): "
                             "no generating, importing or training")
    parser.add_argument("--json", type=Path, default=None, help="write the results here too")
    parser.add_argument("--stage", help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.stage:
        child(args.stage, args.state)
        return

    if args.only == "serve":
        serve_only(args)
        return

    from recommender.store import testing

    if args.keep:
        tmp = Path(tempfile.mkdtemp(prefix="recommender-scale-", dir=args.workdir))
    else:
        tmp_context = tempfile.TemporaryDirectory(prefix="recommender-scale-", dir=args.workdir)
        tmp = Path(tmp_context.name)
    pg_url = None if args.no_postgres else _postgres_url()
    state = {
        "users": args.users, "items": args.items, "ratings": args.ratings, "seed": args.seed,
        "epochs": args.epochs, "threads": args.threads, "chunk": args.chunk,
        "file": str(tmp / "ratings.csv"), "bad_file": str(tmp / "ratings-bad.csv"),
        "sqlite_url": testing.create_sqlite_database(tmp, migrate=True),
        "pg_url": pg_url, "model_path": str(tmp / "model"),
    }
    state_path = tmp / "state.json"
    results: dict[str, dict] = {}
    serve_skip = None
    if args.no_serve:
        serve_skip = "--no-serve"
    elif shutil.which("wrk") is None:
        serve_skip = "wrk is not installed"

    def run(name: str) -> dict:
        print(f"[scale] {name} ...", file=sys.stderr, flush=True)
        results[name] = run_stage(name, state, state_path)
        return results[name]

    try:
        generated = run("generate")
        state["ratings"] = generated["n"]
        state["users"], state["items"] = generated["users"], generated["items"]
        run("reference")
        run("read")
        run("import_sqlite")
        if pg_url is not None:
            state["imported_pg"] = run("import_pg")["n"]
            state["bad_line"] = _write_bad_copy(Path(state["file"]), Path(state["bad_file"]),
                                                state["ratings"])
            run("bad_row_pg")
            run("snapshot_pg")
        run("snapshot_sqlite")
        run("train")
        run("load")
        if serve_skip is None:
            print("[scale] serve ...", file=sys.stderr, flush=True)
            state["serve_url"] = pg_url or state["sqlite_url"]
            results["serve"] = stage_serve(state, args, tmp)
    finally:
        if args.keep:
            state["serve_url"] = pg_url or state["sqlite_url"]
            state_path.write_text(json.dumps(state))
            print(f"[scale] kept {tmp}: rerun the serve stage with --only serve --workdir {tmp}"
                  f" (drop the database {pg_url} and the directory when done)", file=sys.stderr)
        else:
            if pg_url is not None:
                testing.drop_postgres_database(pg_url)
            tmp_context.cleanup()
    report(results, state, args, serve_skip, pg_url is not None)
    if args.json is not None:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "state": {k: v for k, v in state.items()
                                                   if not k.endswith(("url", "file", "path"))},
                                         "results": results}, indent=2, default=str))


def serve_only(args: argparse.Namespace) -> None:
    """The serve stage again on a run kept by ``--keep`` (its state.json in ``--workdir``)."""
    if args.workdir is None or not (args.workdir / "state.json").is_file():
        raise SystemExit(f"--only serve needs --workdir DIR of a run made with --keep. "
                         f"Received: workdir={str(args.workdir)!r}")
    if shutil.which("wrk") is None:
        raise SystemExit("--only serve needs wrk, which is not installed")
    state = json.loads((args.workdir / "state.json").read_text())
    serve = stage_serve(state, args, args.workdir)
    print(f"\nserve only: {state['users']:,} users x {state['items']:,} items, "
          f"{state['ratings']:,} ratings; {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    _serve_rows(serve, args)
    if args.json is not None:
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "results": {"serve": serve}}, indent=2, default=str))


def _serve_rows(serve: dict, args: argparse.Namespace) -> None:
    print(f"{'serve: GET /healthz':<28}{'':>9}{serve['healthz_rps']:>10,.0f}/s"
          f"{serve['peak_mb'] / 1024:>8.2f} GB  the ceiling, {args.concurrency} clients, "
          f"{getattr(args, 'serve_workers', 1)} uvicorn worker(s)")
    print(f"{'serve: GET recommendations':<28}{'':>9}{serve['rps']:>10,.0f}/s{'':>10}  "
          f"p50 {serve['p50_ms']:.1f} ms, p99 {serve['p99_ms']:.1f} ms, "
          f"{serve['ratio']:.0%} of the ceiling (median of {args.rounds} paired rounds), "
          f"server CPU {serve['cpu_us']:,.0f} us/request, {serve['errors']} errors; "
          f"load average {serve['load']}")


def report(results: dict, state: dict, args: argparse.Namespace, serve_skip: str | None,
           postgres: bool) -> None:
    n = state["ratings"]
    ref = results["reference"]
    print(f"\nscale: {state['users']:,} users x {state['items']:,} items, {n:,} ratings; "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; "
          f"training {args.epochs} epoch(s) on {args.threads} torch thread(s)\n")
    header = f"{'stage':<28}{'time':>9}{'ratings/s':>12}{'peak RSS':>10}  notes"
    print(header)
    print("-" * (len(header) + 30))

    def row(name: str, seconds: float, peak_mb: float, notes: str, rate: bool = True) -> None:
        per_s = f"{n / seconds:,.0f}" if rate and seconds == seconds and seconds > 0 else ""
        time_text = f"{seconds:.2f} s" if seconds == seconds else "-"
        peak_text = f"{peak_mb / 1024:.2f} GB" if peak_mb == peak_mb else "-"
        print(f"{name:<28}{time_text:>9}{per_s:>12}{peak_text:>10}  {notes}")

    gen = results["generate"]
    row("generate + write file", gen["seconds"], gen["peak_mb"], gen["notes"], rate=False)
    row("reference: pandas.read_csv", ref["seconds"], ref["peak_mb"], ref["notes"])
    read = results["read"]
    row("read_ratings", read["seconds"], read["peak_mb"],
        f"{read['notes']}; {read['seconds'] / ref['seconds']:.2f}x the reference's time, "
        f"{read['peak_mb'] / ref['peak_mb']:.2f}x its peak")
    imp = results["import_sqlite"]
    row("import -> SQLite", imp["seconds"], imp["peak_mb"], imp["notes"])
    if postgres:
        imp = results["import_pg"]
        row("import -> PostgreSQL", imp["seconds"], imp["peak_mb"], imp["notes"])
        bad = results["bad_row_pg"]
        row("import, 1 bad row -> PG", bad["seconds"], bad["peak_mb"], bad["notes"], rate=False)
        snap = results["snapshot_pg"]
        row("snapshot (PostgreSQL)", snap["seconds"], snap["peak_mb"], snap["notes"])
    else:
        print(f"{'import/snapshot PostgreSQL':<28}{'skipped':>9}  server unreachable or "
              f"--no-postgres")
    snap = results["snapshot_sqlite"]
    row("snapshot (SQLite)", snap["seconds"], snap["peak_mb"], snap["notes"])
    train = results["train"]
    epoch = train["epoch_s"][0] if train["epoch_s"] else train["seconds"]
    row("train: one epoch", epoch, train["train_peak_mb"],
        f"fit {train['seconds']:.1f} s in all; {train['notes']}")
    row("save", train["save_s"], train["peak_mb"],
        f"{train['model_mb']:.0f} MB artifact (same process as training)", rate=False)
    load = results["load"]
    row("load", load["seconds"], load["peak_mb"], load["notes"], rate=False)
    if serve_skip is not None:
        print(f"{'serve':<28}{'skipped':>9}  {serve_skip}")
    else:
        _serve_rows(results["serve"], args)
    if postgres and results["bad_row_pg"].get("message"):
        print(f"\nbad row: {results['bad_row_pg']['message']}")
    print("\npeak RSS: each stage's child process (interpreter and imports included); "
          "time: the stage's work only (imports excluded).")


if __name__ == "__main__":
    main()
