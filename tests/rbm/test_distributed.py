"""Data-parallel training: two CPU processes (gloo on loopback) against one process."""

import json
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file

from recommender.data import generate_ratings
from recommender.rbm import RBMConfig, RBMRecommender

# Mean-field CD (no hidden sampling) makes the runs comparable draw-for-draw; fp32 products
# (bf16 rounds each rank's partial products differently from one process's).
CONFIG = RBMConfig(n_hidden=16, n_preference_hidden=8, epochs=3, batch_size=16,
                   learning_rate=0.05, sample_hidden=False, seed=4, matmul_dtype="float32")


def _ratings():
    return generate_ratings(n_users=90, n_items=40, ratings_per_user=12, seed=11)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=world)
    try:
        model = RBMRecommender(CONFIG)
        model.fit(_ratings(), verbose=0, distributed=True)
        W, a, b = model.get_weights()
        save_file({"W": W, "a": a, "b": b}, f"{out_dir}/rank{rank}.safetensors")
        with open(f"{out_dir}/rank{rank}.json", "w") as fh:
            json.dump({"local_users": model.local_users,
                       "world_size": model.metadata["training"]["world_size"]}, fh)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    mp.start_processes(_rank_main, args=(2, _free_port(), str(out)), nprocs=2, join=True,
                       start_method="spawn")
    return out


def test_two_ranks_match_one_process(two_rank_run):
    single = RBMRecommender(CONFIG)
    single.fit(_ratings(), verbose=0)
    expected = dict(zip("Wab", single.get_weights(), strict=True))
    ranks = [load_file(str(two_rank_run / f"rank{r}.safetensors")) for r in (0, 1)]
    for name in "Wab":
        # Every rank holds identical weights ...
        assert torch.equal(ranks[0][name], ranks[1][name])
        # ... equal to the single-process run over the same global batches.
        torch.testing.assert_close(ranks[0][name], expected[name], rtol=1e-4, atol=1e-5)
    # And training did move the weights.
    assert not torch.allclose(expected["W"], torch.zeros_like(expected["W"]))


def test_each_rank_saw_only_its_shard(two_rank_run):
    infos = [json.loads((two_rank_run / f"rank{r}.json").read_text()) for r in (0, 1)]
    users = sorted(set(_ratings().users.tolist()))
    shards = [set(info["local_users"]) for info in infos]
    assert not shards[0] & shards[1]
    assert shards[0] | shards[1] == set(users)
    assert shards[0] == {u for i, u in enumerate(users) if i % 2 == 0}
    assert all(info["world_size"] == 2 for info in infos)


def test_distributed_without_process_group_is_a_clear_error():
    with pytest.raises(ValueError, match="initialised torch.distributed process group"):
        RBMRecommender(CONFIG).fit(_ratings(), verbose=0, distributed=True)
