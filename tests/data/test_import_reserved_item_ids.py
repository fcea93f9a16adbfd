"""`recommender import` refuses an item called "new" or "popular", as the HTTP API does (GET
/v1/items/new and /v1/items/popular are the lists, so such an item could never be read)."""

from __future__ import annotations

from pathlib import Path

import pytest

from recommender.data import read_ratings


@pytest.mark.parametrize("reserved", ["new", "popular"])
def test_read_ratings_refuses_a_reserved_item_id_with_file_and_line(
    tmp_path: Path, reserved: str
) -> None:
    rows = [f"u{n % 11},i{n % 7},{1 + n % 5}" for n in range(50)]
    rows[30] = f"u1,{reserved},4"
    path = tmp_path / "ratings.csv"
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ValueError) as caught:
        read_ratings(path, rating_min=1, rating_max=5)
    assert str(caught.value) == (
        f"{path}:31: item id: item ids must not be 'new' or 'popular': GET /v1/items/new and "
        f"/v1/items/popular are the lists, so such an item could not be read. "
        f"Received: item={reserved!r}"
    )


def test_a_user_called_new_and_items_that_only_look_reserved_are_read(tmp_path: Path) -> None:
    path = tmp_path / "ratings.csv"
    path.write_text("new,New,4\npopular,newest,5\n")
    ratings = read_ratings(path, rating_min=1, rating_max=5)
    assert ratings.users.tolist() == ["new", "popular"]
    assert ratings.items.tolist() == ["New", "newest"]
