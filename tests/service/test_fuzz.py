"""Schemathesis fuzzes a live server (a uvicorn subprocess) on each database from its own
OpenAPI document, with the checks ``not_a_server_error`` and ``response_schema_conformance``:
no 5xx for any input the document allows or forbids, and every answer matches what the
document says (issue 10, "Fuzzing in CI"; before the fix: 14 distinct failures on SQLite, 12
on PostgreSQL).

The budget is bounded: RECOMMENDER_FUZZ_SECONDS per database (default 60), a fixed seed, at
most 25 examples per operation and phase. Admin routes are fuzzed with the admin token; the
in-process worker is off, so a queued retrain is not trained.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from service_helpers import free_port

FUZZ_SECONDS = int(os.environ.get("RECOMMENDER_FUZZ_SECONDS", "60"))
TOKEN = "fuzz-admin-token"
SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[str]:
    """``uvicorn --factory recommender.service.app:create_app`` on a free port."""
    port = free_port()
    env = os.environ | {
        "RECOMMENDER_DATABASE_URL": db_url,
        "RECOMMENDER_MODEL_DIR": str(tmp_path / "models"),
        "RECOMMENDER_ADMIN_TOKEN": TOKEN,
        "RECOMMENDER_RUN_WORKER": "false",
        "RECOMMENDER_TORCH_THREADS": "1",
        "RECOMMENDER_DB_TIMEOUT_S": "5",
    }
    env.pop("RECOMMENDER_API_KEYS", None)
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "recommender.service.app:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"the server did not start:\n{(tmp_path / 'server.log').read_text()}"
                )
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_fuzzing_finds_no_server_error_and_no_schema_mismatch(server, tmp_path):
    if not SCHEMATHESIS.exists():
        pytest.skip("schemathesis is not installed (pip install -e '.[dev]')")
    command = [
        str(SCHEMATHESIS),
        "run",
        f"{server}/openapi.json",
        "--checks",
        "not_a_server_error,response_schema_conformance",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--max-time",
        str(FUZZ_SECONDS),
        "--max-examples",
        "25",
        "--seed",
        "0",
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--generation-database",
        "none",
        "--no-color",
    ]
    result = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 300,
        cwd=tmp_path,  # schemathesis writes nothing into the checkout
    )
    output = result.stdout + result.stderr
    generated = re.search(r"(\d+) generated", output)
    print("schemathesis:", generated.group(0) if generated else "nothing generated")  # -s
    server_log = (tmp_path / "server.log").read_text()
    assert result.returncode == 0, f"{output[-12000:]}\n--- server log ---\n{server_log[-4000:]}"
    assert generated is not None and int(generated.group(1)) > 0, output[-3000:]
