"""``recommender train`` and ``recommender evaluate``: the RBM engine on a ratings file,
without the store or the service."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from recommender.cli.common import fail

if TYPE_CHECKING:
    from recommender.rbm import RBMConfig

RatingsOption = Annotated[
    Path,
    typer.Option("--ratings", help="MovieLens u.data / ratings.csv / ratings.dat, or a CSV "
                 "user,item,rating[,timestamp].", exists=True, dir_okay=True, readable=True),
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="RBM hyper-parameter override KEY=VALUE (repeatable), "
                 "e.g. -p n_hidden=300 -p epochs=20."),
]
EpochsOption = Annotated[int | None, typer.Option(help="Training epochs.")]
DeviceOption = Annotated[str | None, typer.Option(help="auto, cpu or cuda[:n].")]


def rbm_config(params: list[str] | None, epochs: int | None, device: str | None,
               base: RBMConfig | None = None) -> RBMConfig:
    """Defaults of RBMConfig (or ``base``), then --param overrides, parsed as JSON where
    possible."""

    from recommender.rbm import RBMConfig

    overrides: dict[str, Any] = {}  # JSON values of any type: RBMConfig validates them
    for item in params or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            fail(f"--param expects KEY=VALUE. Received: {item!r}")
        try:
            overrides[key.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            overrides[key.strip()] = raw
    if epochs is not None:
        overrides["epochs"] = epochs
    if device is not None:
        overrides["device"] = device
    try:
        return (base or RBMConfig()).replace(**overrides)
    except (ValueError, TypeError) as exc:
        fail(str(exc))


def evaluate(
    ratings: RatingsOption,
    k: Annotated[int, typer.Option(min=1, help="Length of the top-k lists.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the per-user 75/25 split.")] = 42,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    params: ParamOption = None,
    epochs: EpochsOption = None,
    device: DeviceOption = None,
    cold_start: Annotated[list[int] | None, typer.Option(
        "--cold-start", min=1,
        help="Also rank for users folded in from only this many ratings (repeatable).")
    ] = None,
) -> None:
    """Train the RBM on a per-user 75/25 split and print it beside the popularity baseline."""

    from recommender.data import read_ratings
    from recommender.evaluation import format_table, run_protocol

    config = rbm_config(params, epochs, device)
    try:
        data = read_ratings(ratings)
        result = run_protocol(data, k=k, seed=seed, config=config, verbose=0 if as_json else 1,
                              cold_start=tuple(cold_start or ()))
    except ValueError as exc:
        fail(str(exc))
    typer.echo(json.dumps(result, indent=2) if as_json else format_table(result))


def train(
    ratings: RatingsOption,
    out: Annotated[Path, typer.Option("--out", help="Directory for the saved model.")],
    params: ParamOption = None,
    epochs: EpochsOption = None,
    device: DeviceOption = None,
    distributed: Annotated[bool, typer.Option(
        "--distributed", help="Data-parallel over torch.distributed (launch with torchrun).")
    ] = False,
    init_from: Annotated[Path | None, typer.Option(
        "--init-from", exists=True, file_okay=False,
        help="Warm start from this saved model: its hyper-parameters (-p overrides apply) and "
        "weights; new items start fresh. --epochs then counts added epochs (default 5).")
    ] = None,
) -> None:
    """Train the RBM on all ratings and save it (weights.safetensors + metadata.json)."""
    from recommender.data import read_ratings
    from recommender.rbm import RBMRecommender

    initial = None
    base = None
    if init_from is not None:
        from recommender.service.training import WARM_START_EPOCHS

        try:
            initial = RBMRecommender.load(init_from, device="cpu")
        except (ValueError, OSError, KeyError) as exc:
            fail(f"--init-from {init_from}: {exc}")
        # A warm start keeps the saved model's hyper-parameters, with fewer epochs by
        # default; -p and --epochs override them as usual.
        base = initial.config.replace(device="auto", epochs=WARM_START_EPOCHS)
    config = rbm_config(params, epochs, device, base=base)
    try:
        data = read_ratings(ratings)
        model = RBMRecommender(config)
        if distributed:
            from recommender.rbm.distributed import fit_distributed

            rank = fit_distributed(model, data, verbose=1, initial_model=initial)
        else:
            model.fit(data, verbose=1, initial_model=initial)
            rank = 0
    except ValueError as exc:
        fail(str(exc))
    if rank == 0:
        model.save(out)
        info = model.metadata["training"]
        typer.echo(f"saved to {out}: {info['n_users']} users, {info['n_items']} items, "
                   f"{info['n_ratings']} ratings, {info['epochs_run']} epochs in "
                   f"{info['seconds']:.1f} s on {info['device']}")
