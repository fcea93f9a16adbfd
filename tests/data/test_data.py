"""Readers, de-duplication, splits, validation and generated data."""

import numpy as np
import pytest

from recommender.data import (
    Ratings,
    deduplicate,
    generate_ratings,
    read_item_metadata,
    read_item_titles,
    read_ratings,
    split_per_user,
    validate_ratings,
)

ROWS = [("1", "10", 5.0, 100), ("1", "20", 3.0, 101), ("2", "10", 4.0, 102)]


def _check(r: Ratings):
    assert r.users.tolist() == ["1", "1", "2"]
    assert r.items.tolist() == ["10", "20", "10"]
    assert r.values.tolist() == [5.0, 3.0, 4.0]
    assert r.timestamps.tolist() == [100, 101, 102]


def test_read_movielens_100k_layout(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, r, t in ROWS))
    (tmp_path / "u.item").write_text(
        "10|Toy Story (1995)|01-Jan-1995||http://x|0|0|0|1|1|1|0|0|0|0|0|0|0|0|0|0|0|0|0\n")
    _check(read_ratings(path))
    _check(read_ratings(tmp_path))  # a folder works too
    assert read_item_titles(path) == {"10": "Toy Story (1995)"}
    assert read_item_metadata(path)["10"]["genres"] == ["Animation", "Children's", "Comedy"]


def test_read_movielens_1m_and_latest_layouts(tmp_path):
    dat = tmp_path / "ratings.dat"
    dat.write_text("".join(f"{u}::{i}::{int(r)}::{t}\n" for u, i, r, t in ROWS))
    _check(read_ratings(dat))
    latest = tmp_path / "latest"
    latest.mkdir()
    (latest / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in ROWS))
    (latest / "movies.csv").write_text('movieId,title,genres\n10,"Heat, The (1995)",Action|Crime\n')
    _check(read_ratings(latest / "ratings.csv"))
    assert read_item_titles(latest / "ratings.csv") == {"10": "Heat, The (1995)"}


def test_plain_csv_without_header_and_without_timestamp(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("alice,book-1,4.5\nbob,book-2,2\n")
    r = read_ratings(path)
    assert r.users.tolist() == ["alice", "bob"]
    assert r.values.tolist() == [4.5, 2.0]
    assert r.timestamps.tolist() == [0, 0]


def test_malformed_rows_name_the_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("user,item,rating\na,b,5\nc,d\n")
    with pytest.raises(ValueError, match="bad.csv line 3"):
        read_ratings(path)
    path.write_text("a,b,5\nc,d,five\n")
    with pytest.raises(ValueError, match="line 2"):
        read_ratings(path)
    with pytest.raises(ValueError, match="not found"):
        read_ratings(tmp_path / "missing.csv")


def test_deduplicate_keeps_latest_by_timestamp():
    r = Ratings.from_records([("u", "a", 1, 30), ("u", "a", 5, 10), ("u", "b", 2, 0),
                              ("v", "a", 3, 7), ("u", "a", 4, 20)])
    d = deduplicate(r)
    got = sorted(zip(d.users, d.items, d.values.tolist(), d.timestamps.tolist(), strict=True))
    assert got == [("u", "a", 1.0, 30), ("u", "b", 2.0, 0), ("v", "a", 3.0, 7)]


def test_split_per_user_is_seeded_and_proportional():
    r = generate_ratings(n_users=50, n_items=80, ratings_per_user=20, seed=1)
    train, test = split_per_user(r, test_fraction=0.25, seed=42)
    train2, test2 = split_per_user(r, test_fraction=0.25, seed=42)
    assert test.fingerprint() == test2.fingerprint()
    assert len(train) + len(test) == len(r)
    for user in np.unique(r.users):
        n = int((r.users == user).sum())
        assert int((test.users == user).sum()) == int(np.floor(n * 0.25 + 0.5))
    # No (user, item) pair is on both sides.
    pairs = set(zip(train.users, train.items, strict=True))
    assert not pairs & set(zip(test.users, test.items, strict=True))
    with pytest.raises(ValueError, match="test_fraction must be in"):
        split_per_user(r, test_fraction=1.0)


def test_validate_names_field_and_value():
    with pytest.raises(ValueError, match=r"rating must be in \[1, 5\]. Received: rating=6"):
        validate_ratings(Ratings.from_records([("u", "a", 6, 0)]))
    with pytest.raises(ValueError, match="item id must be a non-empty string"):
        validate_ratings(Ratings.from_records([("u", "", 3, 0)]))
    with pytest.raises(ValueError, match="ratings is empty"):
        validate_ratings(Ratings.from_records([]))


def test_generated_data_has_planted_groups():
    r = generate_ratings(n_users=100, n_items=60, ratings_per_user=15, seed=0)
    assert r.n_users == 100
    assert set(np.unique(r.values)) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    # Deterministic for a seed.
    assert r.fingerprint() == generate_ratings(n_users=100, n_items=60, ratings_per_user=15,
                                               seed=0).fingerprint()
    # Fingerprint is order-independent.
    order = np.random.default_rng(0).permutation(len(r))
    assert r.subset(order).fingerprint() == r.fingerprint()
