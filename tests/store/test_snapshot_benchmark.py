"""benchmarks/snapshot.py at a tiny size (smoke test): it runs, and every read it times saw
every generated rating. The timings are the benchmark's business, not a test's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from recommender.store import testing

REPO = Path(__file__).resolve().parents[2]


def test_snapshot_benchmark_runs_at_a_tiny_size(tmp_path: Path) -> None:
    out = tmp_path / "snapshot.json"
    command = [sys.executable, str(REPO / "benchmarks" / "snapshot.py"), "--users", "120",
               "--items", "80", "--ratings", "3000", "--repeat", "1", "--scatter", "0.2",
               "--json", str(out)]
    postgres = testing.postgres_unreachable_reason() is None
    if not postgres:
        testing.require_postgres()  # fails here under RECOMMENDER_REQUIRE_POSTGRES=1
        command.append("--no-postgres")
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600,
                            check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = json.loads(out.read_text())
    snapshots = {row["database"]: row for row in rows if row["what"] == "snapshot"}
    assert set(snapshots) == ({"pg", "sqlite"} if postgres else {"sqlite"})
    reference = next(row for row in rows if row["what"] == "reference"
                     and row["database"] == "sqlite")
    assert reference["n"] > 1000  # what the generator made of the shape
    for row in snapshots.values():
        assert row["n"] == reference["n"] and 0 < row["users"] <= 120 and row["peak_mb"] > 0
    assert "snapshot" in result.stdout and "x reference" in result.stdout
