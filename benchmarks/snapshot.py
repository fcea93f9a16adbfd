"""Snapshot benchmark: ``store.snapshot_ratings`` (what a retrain reads) against a plain read
of the same table, measured in the same run (prints a table).

Generates ``--ratings`` ratings over ``--users`` x ``--items`` with the project's generator,
imports them into a fresh PostgreSQL database and a fresh SQLite file (or reads the stores
given with ``--database``), then alternates, ``--repeat`` times, each in its own child process
so each peak RSS is its own:

  reference pg      ``psql -c "COPY ratings TO STDOUT" > /dev/null``: the server's cost of
                    handing every row over, with no client work (skipped without ``psql``)
  snapshot pg       store.snapshot_ratings on PostgreSQL
  reference sqlite  a plain ``SELECT *`` fetched in chunks and dropped (Python's sqlite3)
  snapshot sqlite   store.snapshot_ratings on SQLite

``--scatter F`` rewrites a fraction F of the ratings after the import (new row versions at the
end of PostgreSQL's heap), so the snapshot's rows arrive out of key order and it must sort them.

Target for the MovieLens-10M shape (69,878 x 10,677, 10M) on the 2-core machine: <= 5 s and
<= 1.5 GB on PostgreSQL. Timings on a shared machine drift with its load (printed per row):
compare the ratio to the reference of the same round.

    .venv/bin/python benchmarks/snapshot.py [--ratings 10000000] [--repeat 3] [--json out.json]
    .venv/bin/python benchmarks/snapshot.py --ratings 20000 --repeat 1   # a smoke run

Measured on the 10M shape (9.98M ratings; 2 cores shared with other work): the code before
this change (one row per user: GROUP BY over the primary key's index scan) and after it (one
row per range of heap blocks; SQLite one row per user), alternating in the same run:

  store, heap               load     reference         before              after
  PostgreSQL, key order     3.6-4.2  COPY 2.9-3.2 s    5.7-7.4 s, 960 MB   3.4-4.0 s, 850 MB
  PostgreSQL, 10 % rewritten 2.1-2.2 COPY 2.7-3.0 s    4.8-5.2 s, 895 MB   3.6-6.5 s, 1.05 GB
  PostgreSQL, 10 % rewritten 4.4-5.8 COPY 5.3-6.5 s    10.4-14.5 s, 1 GB   4.4-12.0 s, 1.05 GB
  SQLite                    2.6-3.0  fetch 8.6-14 s    21.8-24.9 s, 680 MB 11.7-13.3 s, 750 MB

(three rounds each, SQLite two; its reference from another run at load 2.8-3.5). The figures
move with the load by 2x and more between minutes (a round at load 4.7 took 22.9 s after):
read the ratio to the reference of the same round. After, the snapshot costs ~3 s of server
CPU (the scan and the four aggregates) and ~2.5 s of client CPU (decoding, dictionary encoding,
the key-order check).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from procstat import status_mb  # benchmarks/procstat.py (this script's folder is on sys.path)

REPO = Path(__file__).resolve().parent.parent


def _peak_mb() -> float:
    """This process's peak RSS (VmHWM: unlike ru_maxrss, not inherited from the parent)."""
    return status_mb("VmHWM")


# Children: one measurement each, printed as one JSON line.


def child_snapshot(url: str) -> dict:
    from recommender import store

    engine = store.make_engine(url)
    try:
        base = _peak_mb()
        started = time.perf_counter()
        with store.make_session_factory(engine)() as session:
            ratings = store.snapshot_ratings(session)
        seconds = time.perf_counter() - started
    finally:
        engine.dispose()
    return {"seconds": seconds, "peak_mb": _peak_mb(), "imports_mb": base, "n": len(ratings),
            "users": ratings.n_users, "items": ratings.n_items}


def child_reference_sqlite(url: str) -> dict:
    import sqlite3

    from sqlalchemy.engine import make_url

    connection = sqlite3.connect(make_url(url).database or "")
    started = time.perf_counter()
    cursor = connection.execute("SELECT user_id, item_id, value, timestamp FROM ratings")
    n = 0
    while rows := cursor.fetchmany(250_000):
        n += len(rows)
    seconds = time.perf_counter() - started
    connection.close()
    return {"seconds": seconds, "peak_mb": _peak_mb(), "n": n}


CHILDREN = {"snapshot": child_snapshot, "reference_sqlite": child_reference_sqlite}


def run_child(name: str, url: str) -> dict:
    command = [sys.executable, str(Path(__file__).resolve()), "--child", name, url]
    process = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    lines = [line for line in process.stdout.splitlines() if line.startswith("{")]
    if process.returncode != 0 or not lines:
        raise SystemExit(f"{name} failed (exit {process.returncode}):\n{process.stderr[-3000:]}")
    return json.loads(lines[-1])


def reference_pg(url: str) -> dict | None:
    """``COPY ratings TO STDOUT`` by psql into /dev/null (None when psql is not installed)."""
    from sqlalchemy.engine import make_url

    psql = shutil.which("psql")
    if psql is None:
        return None
    parsed = make_url(url)
    command = [psql, "-X", "-q", "-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432),
               "-U", parsed.username or "postgres", "-d", parsed.database or "",
               "-c", "COPY ratings TO STDOUT"]
    env = {**os.environ, "PGPASSWORD": parsed.password or ""}
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, check=True, env=env)
    return {"seconds": time.perf_counter() - started, "peak_mb": float("nan")}


# Setup


def make_stores(args: argparse.Namespace, workdir: Path) -> tuple[dict[str, str], list[str]]:
    """Generate the set and import it; returns ``{database: url}`` and the PostgreSQL
    databases this run created (dropped at the end)."""
    import numpy as np
    from sqlalchemy import text

    from recommender import store
    from recommender.data import Ratings
    from recommender.data.generate import generate_catalogue
    from recommender.store import testing
    from recommender.store.bulk import import_ratings

    started = time.perf_counter()
    u, i, r, t = generate_catalogue(args.users, args.items, args.ratings, seed=args.seed)
    ratings = Ratings.from_codes(
        u.astype(np.int32), i.astype(np.int32),
        np.array([str(k + 1) for k in range(int(u.max()) + 1)], dtype=object),
        np.array([str(k + 1) for k in range(int(i.max()) + 1)], dtype=object),
        r.astype(np.float32), t.astype(np.int64))
    print(f"generated {len(ratings):,} ratings in {time.perf_counter() - started:.1f} s",
          flush=True)
    urls: dict[str, str] = {}
    created: list[str] = []
    if not args.no_postgres and testing.postgres_unreachable_reason() is None:
        urls["pg"] = testing.create_postgres_database(prefix="recommender_snapshot")
        created.append(urls["pg"])
    if not args.no_sqlite:
        urls["sqlite"] = f"sqlite:///{workdir / 'ratings.db'}"
        store.upgrade_database(urls["sqlite"])
    for name, url in urls.items():
        engine = store.make_engine(url)
        started = time.perf_counter()
        import_ratings(engine, ratings)
        if args.scatter > 0:
            # Every k-th rating rewritten: on PostgreSQL its new version goes to the heap's end.
            step = max(1, round(1 / args.scatter))
            with engine.begin() as connection:
                connection.execute(text(
                    "UPDATE ratings SET timestamp = timestamp + 1 WHERE (hashtext(user_id || "
                    f"item_id) % {step}) = 0" if name == "pg" else
                    f"UPDATE ratings SET timestamp = timestamp + 1 WHERE random() % {step} = 0"))
        with engine.connect() as connection:
            connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.execute(text("VACUUM ANALYZE ratings" if name == "pg" else "ANALYZE"))
        engine.dispose()
        print(f"imported into {name} in {time.perf_counter() - started:.1f} s", flush=True)
    return urls, created


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=69_878)
    parser.add_argument("--items", type=int, default=10_677)
    parser.add_argument("--ratings", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="rounds of every measurement")
    parser.add_argument("--scatter", type=float, default=0.0,
                        help="fraction of ratings rewritten after the import (heap order)")
    parser.add_argument("--database", action="append", default=[], metavar="NAME=URL",
                        help="read this existing store instead (pg=... / sqlite=...)")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--json", type=Path, default=None, help="write the rows here too")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        name, url = args.child
        print(json.dumps(CHILDREN[name](url)), flush=True)
        return

    workdir = Path(tempfile.mkdtemp(prefix="recommender-snapshot-"))
    created: list[str] = []
    try:
        if args.database:
            urls = dict(spec.split("=", 1) for spec in args.database)
        else:
            urls, created = make_stores(args, workdir)
        rows: list[dict] = []
        for round_ in range(args.repeat):
            for name, url in urls.items():
                if name == "pg":
                    reference = reference_pg(url)
                else:
                    reference = run_child("reference_sqlite", url)
                measured = run_child("snapshot", url)
                load = os.getloadavg()[0]
                for what, result in (("reference", reference), ("snapshot", measured)):
                    if result is None:
                        continue
                    row = {"round": round_, "database": name, "what": what, "load": load,
                           **result}
                    if what == "snapshot" and reference is not None:
                        row["vs_reference"] = result["seconds"] / reference["seconds"]
                    rows.append(row)
                    print(f"  round {round_} {name:6} {what:9} {result['seconds']:7.2f} s  "
                          f"peak {result['peak_mb']:6.0f} MB  load {load:.1f}", flush=True)
        print()
        print(f"{'database':8} {'what':10} {'median s':>9} {'peak MB':>8} {'x reference':>12} "
              f"{'load (1 min)':>13}")
        for name in urls:
            for what in ("reference", "snapshot"):
                mine = [row for row in rows if row["database"] == name and row["what"] == what]
                if not mine:
                    continue
                ratio = [row["vs_reference"] for row in mine if "vs_reference" in row]
                loads = " / ".join(f"{row['load']:.1f}" for row in mine)
                print(f"{name:8} {what:10} {statistics.median(r['seconds'] for r in mine):9.2f} "
                      f"{max(r['peak_mb'] for r in mine):8.0f} "
                      f"{(f'{statistics.median(ratio):.2f}' if ratio else ''):>12} "
                      f"{loads:>13}")
        if args.json is not None:
            args.json.write_text(json.dumps(rows, indent=1))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if created:
            from recommender.store import testing

            for url in created:
                testing.drop_postgres_database(url)


if __name__ == "__main__":
    main()
