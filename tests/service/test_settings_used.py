"""Every documented setting does something: each ``Settings`` field is read somewhere in the
package, and the ones that shape requests (batch size, default k, API keys) do what the
README says, on both databases."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from pydantic import ValidationError

from recommender.service import Settings

PACKAGE = Path(__file__).resolve().parents[2] / "recommender"


def _settings_reads() -> dict[str, list[str]]:
    """``{field: ["path:line", ...]}`` for every attribute read of a Settings field on an
    object named like settings (``settings.x``, ``self.settings.x``, ``self._settings.x``),
    or on ``self`` inside the Settings class itself."""
    fields = set(Settings.model_fields)
    reads: dict[str, list[str]] = {name: [] for name in fields}
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        inside_settings = {
            id(node)
            for cls in ast.walk(tree)
            if isinstance(cls, ast.ClassDef) and cls.name == "Settings"
            for node in ast.walk(cls)
        }
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute) or node.attr not in fields:
                continue
            if not isinstance(node.ctx, ast.Load):
                continue
            owner = node.value
            name = (
                owner.id
                if isinstance(owner, ast.Name)
                else owner.attr
                if isinstance(owner, ast.Attribute)
                else ""
            )
            if name.lstrip("_").endswith("settings") or (
                name == "self" and id(node) in inside_settings
            ):
                reads[node.attr].append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    return reads


def test_every_settings_field_is_read_somewhere() -> None:
    unused = sorted(name for name, where in _settings_reads().items() if not where)
    assert unused == [], (
        f"Settings fields that no code reads (documented but doing nothing): {unused}"
    )


def test_the_scan_sees_a_field_nobody_reads() -> None:
    """The scan itself can fail: a field added to Settings and read nowhere is reported."""

    class Extended(Settings):
        never_read_anywhere: int = 0

    fields = set(Extended.model_fields) - set(Settings.model_fields)
    reads = _settings_reads()
    assert fields == {"never_read_anywhere"} and "never_read_anywhere" not in reads
    assert reads["max_batch"] and reads["default_k"]


def _ratings(n: int, user: str = "u") -> list[dict]:
    return [{"user_id": user, "item_id": f"i{i}", "rating": 4} for i in range(n)]


def test_max_batch_limits_rating_batches(make_client) -> None:
    with make_client(max_batch=100) as client:
        too_many = client.post("/v1/ratings", json={"ratings": _ratings(101)})
        assert too_many.status_code == 422, too_many.text
        assert "RECOMMENDER_MAX_BATCH" in too_many.text and "101" in too_many.text
        assert client.get("/v1/users/u/ratings").json()["items"] == []  # nothing written
        assert client.post("/v1/ratings", json={"ratings": _ratings(100)}).status_code == 200
        assert len(client.get("/v1/users/u/ratings?limit=1000").json()["items"]) == 100


def test_max_batch_limits_item_batches_and_visitor_ratings(make_client) -> None:
    with make_client(max_batch=3) as client:
        items = [{"item_id": f"i{i}", "title": f"Item {i}"} for i in range(4)]
        response = client.post("/v1/items", json={"items": items})
        assert response.status_code == 422 and "RECOMMENDER_MAX_BATCH" in response.text
        assert client.get("/v1/items/i0").status_code == 404
        assert client.post("/v1/items", json={"items": items[:3]}).status_code == 200
        visitor = [{"item_id": f"i{i}", "rating": 4} for i in range(4)]
        response = client.post("/v1/recommendations", json={"ratings": visitor})
        assert response.status_code == 422 and "RECOMMENDER_MAX_BATCH" in response.text
        assert client.post("/v1/recommendations", json={"ratings": visitor[:3]}).status_code == 200


def test_default_k_sets_the_length_of_both_recommendation_lists(make_client) -> None:
    with make_client(default_k=3) as client:
        rows = [
            {"user_id": f"v{u}", "item_id": f"i{i}", "rating": 5}
            for u in range(3)
            for i in range(12)
        ]
        assert client.post("/v1/ratings", json={"ratings": rows}).status_code == 200
        assert len(client.get("/v1/users/new/recommendations").json()["items"]) == 3
        assert len(client.post("/v1/recommendations", json={}).json()["items"]) == 3
        # An explicit k still wins.
        assert len(client.get("/v1/users/new/recommendations?k=5").json()["items"]) == 5
        body = {"ratings": [], "k": 7}
        assert len(client.post("/v1/recommendations", json=body).json()["items"]) == 7


@pytest.mark.parametrize("value", [" , ", ",", "k1,,k2", "k1, ,k2"])
def test_api_keys_with_an_empty_key_are_refused_at_start_up(monkeypatch, value: str) -> None:
    monkeypatch.setenv("RECOMMENDER_API_KEYS", value)
    with pytest.raises(ValidationError) as raised:
        Settings()
    message = str(raised.value)
    assert "RECOMMENDER_API_KEYS" in message and "empty at positions" in message
    assert "k1" not in message and "k2" not in message  # keys are secrets: never echoed
    with pytest.raises(ValidationError):
        Settings(api_keys=["k1", ""])


@pytest.mark.parametrize(("value", "keys"), [("", []), ("  ", []), ("k1, k2", ["k1", "k2"])])
def test_api_keys_unset_or_listed(monkeypatch, value: str, keys: list[str]) -> None:
    monkeypatch.setenv("RECOMMENDER_API_KEYS", value)
    assert Settings().api_keys == keys
