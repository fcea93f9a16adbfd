"""benchmarks/scale.py at a tiny size: every stage runs and the table comes out (CI smoke test).

The figures are not checked (timings are the benchmark's business); the counts are: every
generated rating is read, imported, snapshot; the file with a bad row is refused by line and
changes nothing. The serve stage runs when wrk is installed, PostgreSQL stages when the
server is reachable (required under RECOMMENDER_REQUIRE_POSTGRES=1).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from recommender.store import testing

REPO = Path(__file__).resolve().parents[1]


def test_scale_benchmark_runs_every_stage_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    command = [sys.executable, str(REPO / "benchmarks" / "scale.py"), "--users", "120",
               "--items", "80", "--ratings", "3000", "--threads", "1", "--duration", "1",
               "--rounds", "1", "--concurrency", "4", "--workdir", str(tmp_path),
               "--json", str(out), "--keep"]
    postgres = testing.postgres_unreachable_reason() is None
    if not postgres:
        testing.require_postgres()  # fails here under RECOMMENDER_REQUIRE_POSTGRES=1
        command.append("--no-postgres")
    serve = shutil.which("wrk") is not None
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600,
                            check=False)
    (kept,) = [d for d in tmp_path.iterdir() if (d / "state.json").is_file()]
    try:
        assert result.returncode == 0, result.stdout + result.stderr
        _check_table(result.stdout, out, postgres=postgres, serve=serve)
        if serve:  # the serve stage again on the kept run: no generating, importing, training
            again = subprocess.run(
                [sys.executable, str(REPO / "benchmarks" / "scale.py"), "--only", "serve",
                 "--workdir", str(kept), "--duration", "1", "--rounds", "1",
                 "--concurrency", "4", "--json", str(tmp_path / "serve.json")],
                capture_output=True, text=True, cwd=REPO, timeout=300, check=False)
            assert again.returncode == 0, again.stdout + again.stderr
            assert "serve: GET recommendations" in again.stdout
            assert "read_ratings" not in again.stdout
            serve_json = json.loads((tmp_path / "serve.json").read_text())["results"]["serve"]
            assert serve_json["errors"] == 0
    finally:
        url = json.loads((kept / "state.json").read_text()).get("pg_url")
        if url:
            testing.drop_postgres_database(url)


def test_only_serve_needs_a_kept_run(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "scale.py"), "--only", "serve",
         "--workdir", str(tmp_path)], capture_output=True, text=True, cwd=REPO, timeout=120,
        check=False)
    assert result.returncode != 0
    assert "--only serve needs --workdir DIR of a run made with --keep" in result.stderr


def _check_table(table: str, out: Path, *, postgres: bool, serve: bool) -> None:
    for stage in ("reference: pandas.read_csv", "read_ratings", "import -> SQLite",
                  "snapshot (SQLite)", "train: one epoch", "save", "load"):
        assert stage in table
    results = json.loads(out.read_text())["results"]
    n = results["generate"]["n"]
    assert n > 1000
    assert results["reference"]["n"] == results["read"]["n"] == n
    assert results["import_sqlite"]["n"] == results["snapshot_sqlite"]["n"] == n
    assert results["train"]["n"] == n and results["load"]["n"] == results["generate"]["items"]
    if postgres:
        assert results["import_pg"]["n"] == results["snapshot_pg"]["n"] == n
        assert results["bad_row_pg"]["ok"], results["bad_row_pg"]
        assert "refused, line" in table and "store unchanged" in table
    if serve:
        assert results["serve"]["errors"] == 0
        assert "serve: GET recommendations" in table
    else:
        assert "wrk is not installed" in table
