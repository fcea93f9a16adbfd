"""The catalogue routes (issue 14): similar items, retired items, the item list, un-rating,
filters on every list, explanations, the profile, popular and new. Each runs on SQLite and
PostgreSQL (the ``db_url`` fixture behind ``client``)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from service_helpers import offline_model, post_generated_ratings, train

from recommender.rbm import explain, similar


def _rate(client: TestClient, user_id: str, items: dict[str, float]) -> None:
    rows = [{"user_id": user_id, "item_id": i, "rating": r} for i, r in items.items()]
    assert client.post("/v1/ratings", json={"ratings": rows}).status_code == 200


def _errors(response) -> list[dict]:
    body = response.json()
    return body.get("errors") or body.get("detail")


def _ids(body: dict) -> list[str]:
    return [entry["item_id"] for entry in body["items"]]


def _genre(item: str) -> str:
    return "Even" if int(item[1:]) % 2 == 0 else "Odd"


def _tag_items(client: TestClient, n_items: int = 30) -> None:
    """Titles and a genre for i0..i29: "Even"/"Odd" by number, "All" for every one."""
    items = [
        {"item_id": f"i{j}", "title": f"Item {j}", "metadata": {"genres": [_genre(f"i{j}"), "All"]}}
        for j in range(n_items)
    ]
    assert client.post("/v1/items", json={"items": items}).status_code == 200


@pytest.fixture
def trained(client: TestClient):
    by_user = post_generated_ratings(client)
    _tag_items(client)
    job = train(client)
    assert job["status"] == "succeeded", job["error"]
    return client, by_user, job["model_version"]


def _model(client: TestClient):
    return client.app.state.runtime.models.current.model


# -- the item list and retiring -------------------------------------------------------------


def test_the_item_list_pages_registered_and_only_rated_items(client: TestClient) -> None:
    client.put("/v1/items/b", json={"title": "B", "metadata": {"genres": ["x"]}})
    client.put("/v1/items/a", json={"title": "A", "created": 1_700_000_000})
    _rate(client, "u", {"c": 4, "a": 5})
    first = client.get("/v1/items", params={"limit": 2}).json()
    assert first["items"] == [
        {"item_id": "a", "title": "A", "metadata": None, "created": 1_700_000_000},
        {"item_id": "b", "title": "B", "metadata": {"genres": ["x"]}},
    ]
    client.delete("/v1/items/c")
    second = client.get("/v1/items", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert second == {
        "items": [{"item_id": "c", "title": None, "metadata": None, "active": False}],
        "next_cursor": None,
    }
    # One item reads as the list gives it, an only-rated one included; an unknown one is 404.
    for entry in first["items"] + second["items"]:
        assert client.get(f"/v1/items/{entry['item_id']}").json() == entry
    _rate(client, "v", {"d": 3})
    assert client.get("/v1/items/d").json() == {"item_id": "d", "title": None, "metadata": None}
    response = client.get("/v1/items/nope")
    assert response.status_code == 404 and "'nope'" in response.text
    response = client.get("/v1/items", params={"cursor": "!!"})
    assert response.status_code == 422 and _errors(response)[0]["field"] == "cursor"
    response = client.get("/v1/items", params={"limit": 0})
    assert response.status_code == 422 and _errors(response)[0]["field"] == "limit"


def test_erasing_a_user_or_a_rating_leaves_the_cached_popular_list_at_once(make_client) -> None:
    """With the popular list cached for minutes, an erased user's and an erased rating's
    likes leave it at once in this process (the erased user's used to stay for the TTL)."""
    with make_client(popular_cache_s=600, run_worker=False) as client:
        _rate(client, "a", {"x": 5, "y": 5})
        _rate(client, "b", {"x": 5})
        _rate(client, "c", {"z": 5})
        assert _ids(client.get("/v1/items/popular", params={"k": 3}).json()) == ["x", "y", "z"]
        assert client.delete("/v1/users/a").json() == {"user_id": "a", "deleted": 2}
        assert _ids(client.get("/v1/items/popular", params={"k": 3}).json()) == ["x", "z"]
        assert client.delete("/v1/users/b/ratings/x").status_code == 200
        assert _ids(client.get("/v1/items/popular", params={"k": 3}).json()) == ["z"]


def test_retiring_keeps_ratings_unless_asked_and_hides_the_item_from_popular(
    client: TestClient,
) -> None:
    _rate(client, "a", {"x": 5, "y": 4, "z": 5})
    _rate(client, "b", {"x": 4, "y": 5})
    _rate(client, "c", {"x": 5})
    assert _ids(client.get("/v1/items/popular", params={"k": 3}).json()) == ["x", "y", "z"]

    response = client.delete("/v1/items/x")
    assert response.status_code == 200
    assert response.json() == {"item_id": "x", "active": False, "ratings_deleted": 0}
    assert client.get("/v1/items/x").json()["active"] is False
    assert _ids(client.get("/v1/items/popular", params={"k": 3}).json()) == ["y", "z"]
    assert _ids(client.get("/v1/users/nobody/recommendations").json()) == ["y", "z"]
    # The ratings stay (for training).
    assert [r["item_id"] for r in client.get("/v1/users/c/ratings").json()["items"]] == ["x"]

    # A title sent again does not bring it back; "active": true does.
    client.put("/v1/items/x", json={"title": "X"})
    assert client.get("/v1/items/x").json()["active"] is False
    client.put("/v1/items/x", json={"title": "X", "active": True})
    assert _ids(client.get("/v1/items/popular", params={"k": 1}).json()) == ["x"]

    response = client.delete("/v1/items/y", params={"erase_ratings": "true"})
    assert response.json() == {"item_id": "y", "active": False, "ratings_deleted": 2}
    assert [r["item_id"] for r in client.get("/v1/users/b/ratings").json()["items"]] == ["x"]

    assert client.delete("/v1/items/never-seen").status_code == 404
    response = client.delete("/v1/items/x", params={"erase_ratings": "maybe"})
    assert response.status_code == 422 and _errors(response)[0]["field"] == "erase_ratings"


def test_a_retired_item_is_never_recommended_nor_similar_and_comes_back(trained) -> None:
    client, by_user, _ = trained
    user = sorted(by_user)[0]
    before = _ids(client.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json())
    gone = before[0]
    seed = next(i for i in _model(client).item_ids if i != gone)
    similar_before = _ids(client.get(f"/v1/items/{seed}/similar", params={"k": 29}).json())
    assert gone in similar_before

    assert client.delete(f"/v1/items/{gone}").status_code == 200
    after = client.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()
    assert after["strategy"] == "rbm"
    assert _ids(after) == [i for i in _full_ranking(client, user) if i != gone][:5]
    similar_after = _ids(client.get(f"/v1/items/{seed}/similar", params={"k": 29}).json())
    assert similar_after == [i for i in similar_before if i != gone]
    anonymous = client.post("/v1/recommendations", json={"ratings": [], "k": 30}).json()
    assert gone not in _ids(anonymous)

    client.put(f"/v1/items/{gone}", json={"active": True})
    assert _ids(client.get(f"/v1/users/{user}/recommendations", params={"k": 5}).json()) == before


def _full_ranking(client: TestClient, user: str) -> list[str]:
    """Every unrated item for ``user`` in the model's order (no catalogue involved)."""
    ratings = {
        r["item_id"]: r["rating"]
        for r in client.get(f"/v1/users/{user}/ratings", params={"limit": 1000}).json()["items"]
    }
    model = _model(client)
    (items,) = model.recommend([ratings], k=model.n_items)
    return [item for item, _ in items]


def test_retiring_reaches_another_serving_process_within_the_poll_interval(
    trained, make_client
) -> None:
    client, by_user, version = trained
    user = sorted(by_user)[1]
    with make_client(run_worker=False) as other:
        deadline = time.monotonic() + 10
        while other.get("/readyz").json().get("model_version") != version:
            assert time.monotonic() < deadline, "the second process never loaded the model"
            time.sleep(0.05)
        gone = _ids(other.get(f"/v1/users/{user}/recommendations", params={"k": 3}).json())[0]
        assert client.delete(f"/v1/items/{gone}").status_code == 200  # through the first app
        started = time.monotonic()
        while gone in _ids(other.get(f"/v1/users/{user}/recommendations", params={"k": 3}).json()):
            # model_poll_interval_s is 0.2 in these tests; allow for a slow shared machine.
            assert time.monotonic() - started < 5, "the other process still recommends it"
            time.sleep(0.02)
        assert (
            len(_ids(other.get(f"/v1/users/{user}/recommendations", params={"k": 3}).json())) == 3
        )


# -- un-rating ------------------------------------------------------------------------------


def test_un_rating_removes_one_rating_and_the_next_recommendation_folds_in_without_it(
    trained,
) -> None:
    client, by_user, _ = trained
    user = sorted(by_user)[2]
    taken_back = sorted(by_user[user])[0]
    response = client.delete(f"/v1/users/{user}/ratings/{taken_back}")
    assert response.status_code == 200
    assert response.json() == {"user_id": user, "item_id": taken_back, "deleted": True}
    remaining = {i: v for i, v in by_user[user].items() if i != taken_back}
    stored = client.get(f"/v1/users/{user}/ratings", params={"limit": 1000}).json()["items"]
    assert {r["item_id"] for r in stored} == set(remaining)
    mine = client.get(f"/v1/users/{user}/recommendations", params={"k": 30}).json()
    anonymous = client.post(
        "/v1/recommendations",
        json={"ratings": [{"item_id": i, "rating": v} for i, v in remaining.items()], "k": 30},
    ).json()
    assert _ids(mine) == _ids(anonymous)
    assert taken_back in _ids(mine)  # no longer rated: it may be recommended again
    assert client.delete(f"/v1/users/{user}/ratings/{taken_back}").status_code == 404
    response = client.delete(f"/v1/users/{user}/ratings/{'x' * 129}")
    assert response.status_code == 422 and _errors(response)[0]["field"] == "item_id"


# -- filters --------------------------------------------------------------------------------


def test_filters_apply_before_the_top_k_on_user_and_anonymous_lists(trained) -> None:
    client, by_user, _ = trained
    user = sorted(by_user)[3]
    ranking = _full_ranking(client, user)
    even = [i for i in ranking if _genre(i) == "Even"]
    assert len(even) >= 5
    response = client.get(
        f"/v1/users/{user}/recommendations", params={"k": 5, "where": "genres:Even"}
    )
    assert response.status_code == 200
    assert _ids(response.json()) == even[:5]
    excluded = ",".join(even[:2])
    response = client.get(
        f"/v1/users/{user}/recommendations",
        params={"k": 5, "where": "genres:Even", "exclude": excluded},
    )
    assert _ids(response.json()) == even[2:7]
    both = client.get(
        f"/v1/users/{user}/recommendations",
        params=[("k", "3"), ("where", "genres:Even"), ("where", "genres:All")],
    ).json()
    assert _ids(both) == even[:3]
    nothing = client.get(
        f"/v1/users/{user}/recommendations", params={"k": 5, "where": "genres:Horror"}
    ).json()
    assert nothing["items"] == []

    ratings = [{"item_id": i, "rating": v} for i, v in by_user[user].items()]
    anonymous = client.post(
        "/v1/recommendations",
        json={"ratings": ratings, "k": 5, "where": {"genres": "Even"}, "exclude": even[:1]},
    ).json()
    assert _ids(anonymous) == even[1:6]


def test_filters_on_similar_popular_and_new(trained) -> None:
    client, _, _ = trained
    seed = "i1"
    model = _model(client)
    # The order from the served scores (float32; the plain float64 formula is checked against
    # them in tests/rbm/test_similar.py): near-ties cannot flip between the two here.
    scores = similar.similar_scores(model, model._item_index[seed]).tolist()
    order = sorted(range(model.n_items), key=lambda j: -scores[j])
    ranked = [model.item_ids[j] for j in order if model.item_ids[j] != seed]
    odd = [i for i in ranked if _genre(i) == "Odd"]
    body = client.get(
        f"/v1/items/{seed}/similar", params={"k": 4, "where": "genres:Odd", "exclude": odd[0]}
    ).json()
    assert body["strategy"] == "rbm" and _ids(body) == odd[1:5]

    popular = _ids(client.get("/v1/items/popular", params={"k": 30}).json())
    body = client.get("/v1/items/popular", params={"k": 3, "where": "genres:Odd"}).json()
    assert _ids(body) == [i for i in popular if _genre(i) == "Odd"][:3]
    newest = _ids(client.get("/v1/items/new", params={"k": 30}).json())
    body = client.get("/v1/items/new", params={"k": 3, "where": "genres:Even"}).json()
    assert _ids(body) == [i for i in newest if _genre(i) == "Even"][:3]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"where": "genres"}, "where"),
        ({"where": ":Comedy"}, "where"),
        ({"exclude": "a," + "x" * 129}, "exclude[1]"),
        ({"k": 0}, "k"),
        ({"k": 1001}, "k"),
        ({"explain": "perhaps"}, "explain"),
    ],
)
def test_bad_filters_get_422_naming_the_field(client: TestClient, params, field) -> None:
    _rate(client, "u", {"a": 5})
    for path in (
        "/v1/users/u/recommendations",
        "/v1/items/popular",
        "/v1/items/new",
        "/v1/items/a/similar",
    ):
        if field == "explain" and path != "/v1/users/u/recommendations":
            continue
        response = client.get(path, params=params)
        assert response.status_code == 422, (path, response.text)
        assert _errors(response)[0]["field"] == field, (path, response.text)


def test_bad_filters_in_the_anonymous_body_get_422_naming_the_field(client: TestClient) -> None:
    response = client.post("/v1/recommendations", json={"where": {"genres": ["A", "B"]}})
    assert response.status_code == 422
    assert _errors(response)[0]["field"].startswith("where.genres")
    response = client.post("/v1/recommendations", json={"exclude": [""]})
    assert response.status_code == 422 and _errors(response)[0]["field"] == "exclude[0]"


# -- similar items --------------------------------------------------------------------------


def test_similar_items_before_a_model_count_co_ratings(client: TestClient) -> None:
    _rate(client, "a", {"s": 5, "x": 4, "y": 1})
    _rate(client, "b", {"s": 2, "x": 5})
    _rate(client, "c", {"s": 4, "z": 3, "y": 5})
    _rate(client, "d", {"x": 5, "w": 5})
    client.put("/v1/items/x", json={"title": "Item X"})
    body = client.get("/v1/items/s/similar", params={"k": 5}).json()
    assert body == {
        "item_id": "s",
        "model_version": None,
        "strategy": "cooccurrence",
        "items": [
            {"item_id": "x", "score": 2.0, "title": "Item X"},
            {"item_id": "y", "score": 2.0},
            {"item_id": "z", "score": 1.0},
        ],
    }
    client.put("/v1/items/registered", json={"title": "No ratings yet"})
    assert client.get("/v1/items/registered/similar").json()["items"] == []
    assert client.get("/v1/items/unknown/similar").status_code == 404


def test_similar_items_from_the_model_are_the_cosine_ranking_with_titles(trained) -> None:
    client, _, version = trained
    model = _model(client)
    seed = model.item_ids[3]
    body = client.get(f"/v1/items/{seed}/similar", params={"k": 4}).json()
    scores = similar.similar_scores(model, 3).tolist()
    order = sorted((j for j in range(model.n_items) if j != 3), key=lambda j: -scores[j])[:4]
    reference = similar.reference_similar(model, 3)
    assert body["strategy"] == "rbm" and body["model_version"] == version
    assert _ids(body) == [model.item_ids[j] for j in order]
    for entry, j in zip(body["items"], order, strict=True):
        assert entry["score"] == pytest.approx(reference[j], abs=1e-5)
        assert entry["title"] == f"Item {model.item_ids[j][1:]}"
    # Known to the store, not to the model: co-ratings, with strategy saying so.
    _rate(client, "late", {"brand-new": 5, seed: 4})
    late = client.get("/v1/items/brand-new/similar").json()
    assert late["strategy"] == "cooccurrence" and _ids(late) == [seed]


# -- explanations and the profile -----------------------------------------------------------


def test_explain_lists_the_rated_items_behind_each_recommendation(trained) -> None:
    client, by_user, _ = trained
    user = sorted(by_user)[4]
    plain = client.get(f"/v1/users/{user}/recommendations", params={"k": 3}).json()
    body = client.get(
        f"/v1/users/{user}/recommendations", params={"k": 3, "explain": "true"}
    ).json()
    assert _ids(body) == _ids(plain)
    model = _model(client)
    expected = explain.contributions(model, by_user[user], _ids(body))
    for entry in body["items"]:
        because = entry["because"]
        assert 1 <= len(because) <= 3
        want = expected[entry["item_id"]][: len(because)]
        assert [b["item_id"] for b in because] == [c.item_id for c in want]
        for got, c in zip(because, want, strict=True):
            assert got["contribution"] == pytest.approx(c.contribution, rel=1e-6, abs=1e-9)
            assert got["share"] == pytest.approx(c.share, rel=1e-6, abs=1e-9)
            assert got["title"] == f"Item {got['item_id'][1:]}"
            assert got["item_id"] in by_user[user]
    assert "because" not in plain["items"][0]

    ratings = [{"item_id": i, "rating": v} for i, v in by_user[user].items()]
    anonymous = client.post(
        "/v1/recommendations", params={"explain": "true"}, json={"ratings": ratings, "k": 3}
    ).json()
    assert _ids(anonymous) == _ids(body)
    for mine, theirs in zip(anonymous["items"], body["items"], strict=True):
        assert [b["item_id"] for b in mine["because"]] == [b["item_id"] for b in theirs["because"]]
        assert [b["share"] for b in mine["because"]] == pytest.approx(
            [b["share"] for b in theirs["because"]], rel=1e-6
        )


def test_explanations_come_from_the_model_that_ranked_the_list(trained, tmp_path) -> None:
    """A model swapped in between a batch and its explanations does not explain it: the
    reasons are the ranking model's (they were computed with whichever model served by
    then, which may not know the listed items)."""
    from recommender.service.routers.recommendations import EXPLAIN_TOP, _explain
    from recommender.service.serving import LoadedModel, RecommendationRequest

    client, by_user, _ = trained
    runtime = client.app.state.runtime
    user = sorted(by_user)[4]
    (result,) = runtime.recommend_batch([RecommendationRequest(k=3, user_id=user)])
    ranked_by = runtime.models.current
    assert result.strategy == "rbm" and result.model is ranked_by.model
    runtime.models.install(LoadedModel("swapped-in", offline_model(tmp_path / "other")))
    try:
        because = _explain(runtime, result, user)
    finally:
        runtime.models.install(ranked_by)
    expected = explain.contributions(ranked_by.model, by_user[user], _ids(
        {"items": [{"item_id": item} for item, _ in result.items]}))
    assert set(because) == {item for item, _ in result.items}
    for item, reasons in because.items():
        assert [r["item_id"] for r in reasons] == [c.item_id for c in expected[item][:EXPLAIN_TOP]]


def test_explain_on_the_popular_list_has_no_reasons(client: TestClient) -> None:
    _rate(client, "a", {"x": 5})
    body = client.get("/v1/users/new/recommendations", params={"explain": "true"}).json()
    assert body["strategy"] == "popular"
    assert body["items"] == [{"item_id": "x", "score": body["items"][0]["score"], "because": []}]


def test_the_profile_names_the_most_active_units_their_items_and_shared_genres(trained) -> None:
    client, by_user, version = trained
    user = sorted(by_user)[5]
    body = client.get(f"/v1/users/{user}/profile", params={"units": 2, "items": 4}).json()
    model = _model(client)
    expected = explain.profile(model, by_user[user], units=2, items_per_unit=4)
    assert body["user_id"] == user and body["model_version"] == version
    assert body["ratings"] == len(by_user[user])
    assert [u["unit"] for u in body["units"]] == [u.unit for u in expected]
    for got, want in zip(body["units"], expected, strict=True):
        assert got["activation"] == pytest.approx(want.activation, rel=1e-6)
        assert [i["item_id"] for i in got["items"]] == [i for i, _ in want.items]
        counts: dict[str, int] = {}
        for item, _ in want.items:
            for genre in (_genre(item), "All"):
                counts[genre] = counts.get(genre, 0) + 1
        assert {g["genre"]: g["items"] for g in got["genres"]} == {
            g: n for g, n in counts.items() if n >= 2
        }
        assert got["genres"][0] == {"genre": "All", "items": 4}
    response = client.get(f"/v1/users/{user}/profile", params={"units": 0})
    assert response.status_code == 422 and _errors(response)[0]["field"] == "units"


def test_the_profile_before_any_model_is_409(client: TestClient) -> None:
    assert client.get("/v1/users/u/profile").status_code == 409


# -- new ------------------------------------------------------------------------------------


def test_new_items_by_created_then_first_rating(client: TestClient) -> None:
    client.post(
        "/v1/ratings",
        json={
            "ratings": [
                {"user_id": "a", "item_id": "old", "rating": 4, "timestamp": 100},
                {"user_id": "b", "item_id": "old", "rating": 4, "timestamp": 50},
                {"user_id": "a", "item_id": "mid", "rating": 2, "timestamp": 200},
                {"user_id": "a", "item_id": "dated", "rating": 2, "timestamp": 900},
            ]
        },
    )
    client.put("/v1/items/dated", json={"title": "Dated", "created": 150})
    client.put("/v1/items/fresh", json={"title": "Fresh", "created": 300})
    body = client.get("/v1/items/new", params={"k": 10}).json()
    assert body == {
        "strategy": "new",
        "items": [
            {"item_id": "fresh", "score": 300.0, "title": "Fresh"},
            {"item_id": "mid", "score": 200.0},
            {"item_id": "dated", "score": 150.0, "title": "Dated"},
            {"item_id": "old", "score": 50.0},
        ],
    }
    client.delete("/v1/items/mid")
    assert _ids(client.get("/v1/items/new", params={"k": 2}).json()) == ["fresh", "dated"]
    response = client.put("/v1/items/x", json={"created": -1})
    assert response.status_code == 422 and _errors(response)[0]["field"] == "created"


def test_the_openapi_document_has_every_catalogue_route() -> None:
    from recommender.service import Settings, create_app

    paths = create_app(Settings(database_url="sqlite://")).openapi()["paths"]
    for path, method in [
        ("/v1/items", "get"),
        ("/v1/items/popular", "get"),
        ("/v1/items/new", "get"),
        ("/v1/items/{item_id}/similar", "get"),
        ("/v1/items/{item_id}", "delete"),
        ("/v1/users/{user_id}/ratings/{item_id}", "delete"),
        ("/v1/users/{user_id}/profile", "get"),
    ]:
        assert method in paths[path], (path, method)
    parameters = {
        p["name"] for p in paths["/v1/users/{user_id}/recommendations"]["get"]["parameters"]
    }
    assert {"exclude", "where", "explain"} <= parameters
