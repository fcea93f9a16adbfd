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
    with pytest.raises(ValueError, match="bad.csv:3: expected 3 fields"):
        read_ratings(path)
    path.write_text("a,b,5\nc,d,five\n")
    with pytest.raises(ValueError, match="bad.csv:2: rating must be a number. Received: "
                                         "rating='five'"):
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


# -- the columnar reader: every layout, the line of a bad row, the fallback parser ----------


@pytest.fixture(params=["pyarrow", "pandas"])
def parser(request, monkeypatch):
    """Each reader test runs on pyarrow's parser and on pandas' C parser (no pyarrow)."""
    if request.param == "pandas":
        from recommender.data import io

        def no_pyarrow(*_args, **_kwargs):
            raise ImportError("pyarrow disabled for this test")

        monkeypatch.setattr(io, "_read_pyarrow", no_pyarrow)
    return request.param


def test_both_parsers_read_every_layout_alike(tmp_path, parser):
    (tmp_path / "u.data").write_text("".join(f"{u}\t{i}\t{int(r)}\t{t}\n" for u, i, r, t in ROWS))
    _check(read_ratings(tmp_path / "u.data"))
    (tmp_path / "ratings.dat").write_text(
        "".join(f"{u}::{i}::{int(r)}::{t}\n" for u, i, r, t in ROWS))
    _check(read_ratings(tmp_path / "ratings.dat"))
    (tmp_path / "r.csv").write_text(
        "userId,movieId,rating,timestamp\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in ROWS))
    _check(read_ratings(tmp_path / "r.csv"))


def test_ids_stay_text_quoted_and_unicode(tmp_path, parser):
    path = tmp_path / "odd.csv"
    path.write_text('user,item,rating\n01,"a, b",4\n1,"say ""hi""",2.5\n\u00e9l\u00e8ve,'
                    '\u2603,3\n 01 , x ,5\n', encoding="utf-8")
    r = read_ratings(path)
    assert r.users.tolist() == ["01", "1", "\u00e9l\u00e8ve", "01"]  # "01" is not "1"; stripped
    assert r.items.tolist() == ["a, b", 'say "hi"', "\u2603", "x"]
    assert r.values.tolist() == [4.0, 2.5, 3.0, 5.0]
    assert r.user_ids.tolist() == ["01", "1", "\u00e9l\u00e8ve"]  # sorted categories
    assert r.user_codes.tolist() == [0, 1, 2, 0]


def test_a_latin1_file_is_read_as_latin1(tmp_path, parser):
    path = tmp_path / "old.csv"
    path.write_bytes("caf\u00e9,1,4\n".encode("latin-1"))
    assert read_ratings(path).users.tolist() == ["caf\u00e9"]


@pytest.mark.parametrize(("content", "line", "message"), [
    ("u,i,5\nu,j,5\n\nv,i,nine\n", 4, "rating must be a number. Received: rating='nine'"),
    ("user,item,rating\nu,i,5\nv,i,9\n", 3,
     r"rating must be in \[1, 5\]. Received: rating=9 \(user='v', item='i'\)"),
    ("u,i,5\nv,i,0.5\n", 2, r"rating must be in \[1, 5\]. Received: rating=0.5"),
    ("u,i,5\nv,i,nan\n", 2, "rating must be a finite number"),
    ("u,i,5\nv,i,\n", 2, "rating must be a number. Received: rating=''"),
    ("u,i,5\n,i,4\n", 2, "user id must be a non-empty string"),
    ("u,i,5,1\nv,i,4,yesterday\n", 2, "timestamp must be an integer"),
    ("u,i,5\nv,i,4,1,extra\n", 2, "expected 3 fields"),
])
def test_a_bad_row_is_named_by_file_and_line(tmp_path, parser, content, line, message):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=f"bad.csv:{line}: {message}"):
        read_ratings(path, rating_min=1, rating_max=5)


def test_the_line_is_right_far_into_a_file(tmp_path):
    rows = [f"u{n % 97},i{n % 89},{1 + n % 5},{n}" for n in range(50_000)]
    rows[31_337] = "u1,i2,9,0"
    path = tmp_path / "big.csv"
    path.write_text("user,item,rating,timestamp\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValueError, match="big.csv:31339: rating must be in"):
        read_ratings(path, rating_min=1, rating_max=5)
    assert len(read_ratings(path)) == 50_000  # no scale given: 9 is read as it is


@pytest.mark.parametrize("content", ["", "\n\n", "user,item,rating,timestamp\n"])
def test_an_empty_file_is_a_clear_error(tmp_path, parser, content):
    path = tmp_path / "empty.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match="empty.csv: the file has no ratings"):
        read_ratings(path)


# -- the columnar table ------------------------------------------------------------------


def test_from_codes_sorts_categories_and_keeps_rows():
    r = Ratings.from_codes(np.array([0, 1, 0]), np.array([1, 0, 0]), ["zed", "amy"],
                           ["y", "x"], [1, 2, 3], [10, 20, 30])
    assert r.user_ids.tolist() == ["amy", "zed"] and r.item_ids.tolist() == ["x", "y"]
    assert r.users.tolist() == ["zed", "amy", "zed"]
    assert r.items.tolist() == ["x", "y", "y"]
    with pytest.raises(ValueError, match="categories must be unique.*'a'"):
        Ratings.from_codes(np.array([0]), np.array([0]), ["a", "a"], ["x"], [1])


def test_subset_keeps_categories_and_counts_only_used_ids():
    r = Ratings.from_records([("u", "a", 1, 0), ("v", "b", 2, 0), ("w", "a", 3, 0)])
    s = r.subset(np.array([0, 2]))
    assert (s.n_users, s.n_items, len(s.user_ids)) == (2, 1, 3)
    assert s.used_user_ids().tolist() == ["u", "w"]
    c = s.compact()
    assert c.user_ids.tolist() == ["u", "w"] and c.user_codes.tolist() == [0, 1]
    assert c.fingerprint() == s.fingerprint() == Ratings.from_records(
        [("w", "a", 3, 0), ("u", "a", 1, 0)]).fingerprint()
    assert s.fingerprint() != r.fingerprint()


def _dedup_brute_force(rows):
    best = {}
    for n, (u, i, v, t) in enumerate(rows):
        if (u, i) not in best or t >= best[(u, i)][1][3]:
            best[(u, i)] = (n, (u, i, v, t))
    return [row for _, row in sorted(best.values())]


def test_deduplicate_matches_brute_force_with_ties():
    rng = np.random.default_rng(3)
    rows = [(f"u{rng.integers(6)}", f"i{rng.integers(5)}", float(rng.integers(1, 6)),
             int(rng.integers(0, 4))) for _ in range(300)]
    d = deduplicate(Ratings.from_records(rows))
    got = list(zip(d.users.tolist(), d.items.tolist(), d.values.tolist(),
                   d.timestamps.tolist(), strict=True))
    assert got == _dedup_brute_force(rows)


def _split_reference(users, test_fraction, seed):
    """The string-array split this protocol was defined with (P@10 0.388 rests on it)."""
    rng = np.random.default_rng(seed)
    order = np.argsort(users, kind="stable")
    sorted_users = users[order]
    boundaries = np.flatnonzero(sorted_users[1:] != sorted_users[:-1]) + 1
    mask = np.zeros(len(users), dtype=bool)
    for group in np.split(order, boundaries):
        n_test = int(np.floor(len(group) * test_fraction + 0.5))
        if len(group) < 2 or n_test == 0:
            continue
        mask[rng.choice(group, size=n_test, replace=False)] = True
    return mask


@pytest.mark.parametrize(("fraction", "seed"), [(0.25, 42), (0.2, 7), (0.5, 0)])
def test_split_per_user_draws_what_the_string_version_drew(fraction, seed):
    r = generate_ratings(n_users=120, n_items=90, ratings_per_user=12, seed=5)
    shuffled = r.subset(np.random.default_rng(1).permutation(len(r)))
    mask = _split_reference(shuffled.users.astype(str), fraction, seed)
    train, test = split_per_user(shuffled, test_fraction=fraction, seed=seed)
    assert test.users.tolist() == shuffled.users[mask].tolist()
    assert test.items.tolist() == shuffled.items[mask].tolist()
    assert train.items.tolist() == shuffled.items[~mask].tolist()


def test_catalogue_generator_shape():
    from recommender.data.generate import generate_catalogue

    u, i, r, t = generate_catalogue(1000, 500, 20_000, seed=0)
    assert len(r) == 20_000
    keys = u * 500 + i
    assert (np.diff(keys) > 0).all()  # sorted by (user, item), one rating per pair
    per_user = np.bincount(u, minlength=1000)
    per_item = np.sort(np.bincount(i, minlength=500))[::-1]
    assert per_user.min() >= 1 and per_user.max() > 4 * np.median(per_user)  # heavy tail
    assert per_item[:30].sum() > per_item[-250:].sum()  # popular head
    assert set(np.unique(r)) <= {1.0, 2.0, 3.0, 4.0, 5.0} and len(t) == len(r)
