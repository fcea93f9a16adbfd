"""Readers for MovieLens layouts and plain CSV. Files are read from a path, never bundled."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .ratings import Ratings


def _sniff(path: Path) -> str:
    name = path.name.lower()
    if name == "u.data" or name.endswith(".data"):
        return "tab"
    if name.endswith(".dat"):
        return "colons"
    return "csv"


def read_ratings(path: str | Path) -> Ratings:
    """Read MovieLens ``u.data``, ``ratings.dat``, ``ratings.csv`` or a plain CSV.

    A plain CSV has columns ``user,item,rating[,timestamp]``, with or without a header row.
    Raises ``ValueError`` naming the line for a malformed row.
    """
    path = Path(path)
    if path.is_dir():
        for candidate in ("u.data", "ratings.csv", "ratings.dat"):
            if (path / candidate).exists():
                path = path / candidate
                break
        else:
            raise ValueError(f"No ratings file (u.data, ratings.csv, ratings.dat) in {path}")
    if not path.exists():
        raise ValueError(f"ratings file not found. Received: path={str(path)!r}")
    kind = _sniff(path)
    users: list[str] = []
    items: list[str] = []
    values: list[float] = []
    stamps: list[int] = []
    with path.open(encoding="latin-1", newline="") as fh:
        if kind == "csv":
            rows = csv.reader(fh)
        elif kind == "tab":
            rows = (line.rstrip("\n").split("\t") for line in fh)
        else:
            rows = (line.rstrip("\n").split("::") for line in fh)
        for lineno, row in enumerate(rows, start=1):
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            if lineno == 1 and kind == "csv":
                try:
                    float(row[2])
                except (ValueError, IndexError):
                    continue  # header row
            if len(row) < 3:
                raise ValueError(
                    f"{path.name} line {lineno}: expected user,item,rating[,timestamp]. "
                    f"Received: {row!r}"
                )
            try:
                value = float(row[2])
                stamp = int(float(row[3])) if len(row) > 3 and row[3].strip() else 0
            except ValueError as exc:
                raise ValueError(f"{path.name} line {lineno}: {exc}. Received: {row!r}") from exc
            users.append(row[0].strip())
            items.append(row[1].strip())
            values.append(value)
            stamps.append(stamp)
    return Ratings.from_arrays(np.array(users, dtype=object), np.array(items, dtype=object),
                               values, stamps)


def read_item_titles(path: str | Path) -> dict[str, str]:
    """Titles from ``u.item``, ``movies.csv`` or ``movies.dat`` beside a ratings file."""
    return {item: meta["title"] for item, meta in read_item_metadata(path).items()}


ML100K_GENRES = [
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
    "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance",
    "Sci-Fi", "Thriller", "War", "Western",
]


def read_item_metadata(path: str | Path) -> dict[str, dict]:
    """``{item_id: {"title": ..., "genres": [...]}}`` from the MovieLens item file, if any."""
    path = Path(path)
    folder = path if path.is_dir() else path.parent
    out: dict[str, dict] = {}
    if (folder / "u.item").exists():
        with (folder / "u.item").open(encoding="latin-1") as fh:
            for line in fh:
                parts = line.rstrip("\n").split("|")
                if len(parts) < 5:
                    continue
                flags = parts[5:5 + len(ML100K_GENRES)]
                genres = [g for g, f in zip(ML100K_GENRES, flags, strict=False) if f == "1"]
                out[parts[0]] = {"title": parts[1], "genres": genres}
    elif (folder / "movies.csv").exists():
        with (folder / "movies.csv").open(encoding="utf-8", newline="") as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for row in reader:
                if len(row) >= 2:
                    genres = row[2].split("|") if len(row) > 2 and row[2] else []
                    out[row[0]] = {"title": row[1], "genres": genres}
    elif (folder / "movies.dat").exists():
        with (folder / "movies.dat").open(encoding="latin-1") as fh:
            for line in fh:
                parts = line.rstrip("\n").split("::")
                if len(parts) >= 2:
                    genres = parts[2].split("|") if len(parts) > 2 and parts[2] else []
                    out[parts[0]] = {"title": parts[1], "genres": genres}
    return out
