"""The RBM's mathematics against brute-force enumeration and hand computation."""

import itertools
import math

import pytest
import torch

from recommender.rbm import functional as Fn
from recommender.rbm.structured import structured_cd1


def _all_binary(n):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=n)))


def _all_ternary_indicators(n_units):
    """All visible states of n ternary units as (2 indicator columns per unit)."""
    one_hot = {0: [0.0, 0.0], 1: [1.0, 0.0], 2: [0.0, 1.0]}
    rows = []
    for states in itertools.product([0, 1, 2], repeat=n_units):
        rows.append(sum((one_hot[s] for s in states), []))
    return torch.tensor(rows)


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _params(n_cols, n_hidden, seed=0):
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(n_cols, n_hidden, generator=g, dtype=torch.float64)
    a = torch.randn(n_cols, generator=g, dtype=torch.float64)
    b = torch.randn(n_hidden, generator=g, dtype=torch.float64)
    return W, a, b


@pytest.mark.parametrize("n_states", [1, 2])
def test_conditionals_and_free_energy_match_brute_force(n_states):
    """A 3-visible x 2-hidden RBM: every joint state enumerated."""
    n_units, n_hidden = 3, 2
    W, a, b = _params(n_units * n_states, n_hidden)
    V = _all_binary(n_units) if n_states == 1 else _all_ternary_indicators(n_units)
    H = _all_binary(n_hidden)
    # E[v, h] for every pair: (n_v, n_h)
    E = torch.stack([Fn.energy(V, h.expand(len(V), -1), W, a, b) for h in H], dim=1)
    joint = torch.exp(-E)
    joint = joint / joint.sum()

    # p(h_j = 1 | v) from the joint table
    p_v = joint.sum(dim=1, keepdim=True)
    p_h_given_v = (joint / p_v) @ H  # (n_v, n_hidden)
    torch.testing.assert_close(Fn.hidden_probs(V, W, b), p_h_given_v)

    # p(visible columns | h): expectation of each indicator under p(v | h)
    p_h = joint.sum(dim=0, keepdim=True)
    p_cols_given_h = ((joint / p_h).t() @ V)  # (n_h, n_cols)
    torch.testing.assert_close(Fn.visible_probs(H, W, a, n_states), p_cols_given_h)

    # p(unit is in a weighted state | h) = sigmoid(rated log-odds), from the joint table
    if n_states == 2:
        rated = (joint / p_h).t() @ V.view(len(V), n_units, 2).sum(dim=-1)  # (n_h, n_units)
        logits = Fn.visible_logits(H, W, a).view(len(H), n_units, 2)
        torch.testing.assert_close(torch.sigmoid(Fn.rated_log_odds(logits)), rated)

    # Free energy: F(v) = -log sum_h exp(-E(v, h))
    F_brute = -torch.logsumexp(-E, dim=1)
    torch.testing.assert_close(Fn.free_energy(V, W, a, b), F_brute)


def test_rated_log_odds_worked_example():
    # logits 0 and log 3: p(states) = (1, 3) / (1 + 1 + 3), so p(rated) = 4/5 = sigmoid(log 4)
    logits = torch.tensor([[0.0, math.log(3.0)], [-math.inf, -math.inf]])
    torch.testing.assert_close(Fn.rated_log_odds(logits), torch.tensor([math.log(4.0), -math.inf]))


def test_energy_worked_example():
    # E = -(v.a) - (h.b) - v W h with v=(1,0,1), h=(1,1)
    W = torch.tensor([[0.5, -1.0], [2.0, 0.0], [0.25, 0.75]])
    a = torch.tensor([0.1, 0.2, -0.3])
    b = torch.tensor([-0.5, 0.4])
    v = torch.tensor([[1.0, 0.0, 1.0]])
    h = torch.tensor([[1.0, 1.0]])
    expected = -(0.1 - 0.3) - (-0.5 + 0.4) - (0.5 - 1.0 + 0.25 + 0.75)
    assert Fn.energy(v, h, W, a, b).item() == pytest.approx(expected)


def test_cd1_update_by_hand():
    """Saturated hidden unit (b=20) makes the chain deterministic: compute CD-1 by hand."""
    W = torch.tensor([[1.0], [2.0]])
    a = torch.tensor([0.1, -0.2])
    b = torch.tensor([20.0])
    x0 = torch.tensor([[1.0, 1.0]])
    stats = Fn.cd_k(x0, W, a, b, k=1, n_states=1)
    s1, s2 = 1 / (1 + math.exp(-1.1)), 1 / (1 + math.exp(-1.8))  # p(v=1 | h=1)
    # dW = v0 p(h|v0) - vk p(h|vk) with both hidden probabilities = sigmoid(>=20) ~ 1
    torch.testing.assert_close(stats.dW, torch.tensor([[1 - s1], [1 - s2]]), atol=1e-7, rtol=0)
    torch.testing.assert_close(stats.da, torch.tensor([1 - s1, 1 - s2]))
    torch.testing.assert_close(stats.db, torch.tensor([0.0]), atol=1e-7, rtol=0)
    expected_rec = ((1 - s1) ** 2 + (1 - s2) ** 2) / 2
    assert stats.reconstruction_error.item() == pytest.approx(expected_rec)


def test_cd1_ternary_by_hand():
    """One ternary unit, saturated hidden unit: p(states | h=1) = softmax([0, a0+w0, a1+w1])."""
    W = torch.tensor([[0.5], [1.0]])  # columns: disliked, liked
    a = torch.tensor([0.0, 0.2])
    b = torch.tensor([25.0])
    x0 = torch.tensor([[0.0, 1.0]])  # liked
    stats = Fn.cd_k(x0, W, a, b, k=1, n_states=2)
    z = torch.tensor([0.0, 0.5, 1.2])
    p = torch.softmax(z, 0)[1:]
    torch.testing.assert_close(stats.x_k[0], p)
    torch.testing.assert_close(stats.dW[:, 0], x0[0] - p, atol=1e-7, rtol=0)


def test_masked_units_receive_no_update_and_add_nothing():
    W, a, b = _params(4, 3, seed=1)
    x0 = torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    g = torch.Generator().manual_seed(3)
    stats = Fn.cd_k(x0, W, a, b, k=3, n_states=1, mask=mask, generator=g)
    # Unit 3 is missing for both users: no weight or bias update at all.
    assert torch.equal(stats.dW[3], torch.zeros(3))
    assert stats.da[3].item() == 0.0
    # Reconstructions are clamped to zero where masked.
    assert torch.equal(stats.x_k * (1 - mask), torch.zeros_like(x0))
    # A missing unit adds nothing to the hidden input, whatever its weight.
    W2 = W.clone()
    W2[3] += 100.0
    torch.testing.assert_close(Fn.hidden_probs(x0 * mask, W2, b), Fn.hidden_probs(x0 * mask, W, b))


def test_cd_k_rejects_bad_k():
    W, a, b = _params(2, 1)
    with pytest.raises(ValueError, match="k must be >= 1. Received: k=0"):
        Fn.cd_k(torch.ones(1, 2), W, a, b, k=0)


def test_sample_visible_draws_each_state_with_its_probability():
    p = torch.tensor([[0.2, 0.5]]).expand(20000, -1).contiguous()  # ref state prob 0.3
    g = torch.Generator().manual_seed(0)
    draws = Fn.sample_visible(p, 2, g)
    assert torch.all(draws.sum(dim=1) <= 1)
    freq = draws.mean(dim=0)
    torch.testing.assert_close(freq, torch.tensor([0.2, 0.5]), atol=0.015, rtol=0)


def _sparse_batch(x):
    row_of, cols = torch.nonzero(x, as_tuple=True)
    lengths = torch.bincount(row_of, minlength=x.shape[0])
    return Fn.SparseBatch(row_of=row_of, cols=cols, offsets=torch.cumsum(lengths, 0) - lengths,
                          size=x.shape[0])


def _ternary_batch(seed=0, users=5, units=7):
    g = torch.Generator().manual_seed(seed)
    states = torch.randint(0, 3, (users, units), generator=g)  # 0 unrated, 1 dis, 2 liked
    x = torch.zeros(users, units, 2, dtype=torch.float64)
    for s in (1, 2):
        x[..., s - 1] = (states == s).double()
    return x.view(users, -1)


@pytest.mark.parametrize("k", [1, 3])
def test_sparse_cd_equals_dense_cd(k):
    x = _ternary_batch()
    W, a, b = _params(x.shape[1], 4, seed=2)
    dense = Fn.cd_k(x, W, a, b, k=k, n_states=2, generator=torch.Generator().manual_seed(7))
    sparse = Fn.cd_k_sparse(_sparse_batch(x), W, a, b, k=k, n_states=2,
                            generator=torch.Generator().manual_seed(7))
    for name in ("dW", "da", "db", "reconstruction_error", "x_k", "h_0"):
        torch.testing.assert_close(getattr(sparse, name), getattr(dense, name))


def test_sparse_cd_equals_dense_cd_with_sampling_and_dropout():
    """Both CD-k share the Gibbs chain: sampled visible units and hidden dropout included."""
    x = _ternary_batch()
    W, a, b = _params(x.shape[1], 6, seed=4)
    kwargs = dict(k=2, n_states=2, sample_visible_units=True, hidden_dropout=0.5)
    dense = Fn.cd_k(x, W, a, b, generator=torch.Generator().manual_seed(9), **kwargs)
    sparse = Fn.cd_k_sparse(_sparse_batch(x), W, a, b,
                            generator=torch.Generator().manual_seed(9), **kwargs)
    for name in ("dW", "da", "db", "reconstruction_error", "x_k", "h_0", "h_k"):
        torch.testing.assert_close(getattr(sparse, name), getattr(dense, name))


def test_hidden_dropout_draws_one_mask_per_mini_batch():
    """A dropped hidden unit is off for every user of the batch: its column of p(h | x0),
    p(h | x_k), dW and db is exactly zero; kept units are untouched."""
    x = _ternary_batch()
    W, a, b = _params(x.shape[1], 8, seed=5)
    mask = Fn.dropout_mask(b, 0.5, torch.Generator().manual_seed(3))
    stats = Fn.cd_k(x, W, a, b, k=1, n_states=2, hidden_dropout=0.5,
                    generator=torch.Generator().manual_seed(3))
    dropped = mask == 0
    assert 0 < int(dropped.sum()) < 8  # this seed drops some units and keeps some
    assert (stats.h_0[:, dropped] == 0).all() and (stats.h_k[:, dropped] == 0).all()
    assert (stats.dW[:, dropped] == 0).all() and (stats.db[dropped] == 0).all()
    torch.testing.assert_close(stats.h_0[:, ~dropped], Fn.hidden_probs(x, W, b)[:, ~dropped])
    assert Fn.dropout_mask(b, 0.0) is None


def test_sparse_conditional_cd_equals_the_dense_masked_chain():
    """Dense reference: resample liked vs disliked of rated units only, mask the rest."""
    x = _ternary_batch(seed=3)
    W, a, b = _params(x.shape[1], 4, seed=4)
    ph0 = Fn.hidden_probs(x, W, b)
    h = Fn.sample_bernoulli(ph0, torch.Generator().manual_seed(9))
    pv = Fn.visible_probs(h, W, a, 2).view(x.shape[0], -1, 2)
    rated = x.view(x.shape[0], -1, 2).sum(dim=-1, keepdim=True)
    xk = (pv / pv.sum(dim=-1, keepdim=True) * rated).view(x.shape[0], -1)
    phk = Fn.hidden_probs(xk, W, b)
    expected_dW = (x.t() @ ph0 - xk.t() @ phk) / x.shape[0]
    dW, db = Fn.conditional_cd_sparse(_sparse_batch(x), W, a, b, ph0, n_states=2,
                                      generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(dW, expected_dW)
    torch.testing.assert_close(db, (ph0 - phk).mean(dim=0))
    # A column subset gives that slice of the same statistics.
    dW2, db2 = Fn.conditional_cd_sparse(_sparse_batch(x), W, a, b, ph0, n_states=2,
                                        columns=slice(2, None),
                                        generator=torch.Generator().manual_seed(9))
    torch.testing.assert_close(dW2, expected_dW[:, 2:])
    torch.testing.assert_close(db2, db[2:])


# -- the structured model's fast CD-1 against the reference functions ---------------------------

def _structured_case(n_e, n_p, seed=0, users=6, units=9):
    x = _ternary_batch(seed=seed, users=users, units=units)
    x[2] = 0.0  # a user without ratings
    g = torch.Generator().manual_seed(seed + 1)
    W_e = torch.randn(units, n_e, generator=g, dtype=torch.float64)
    W_p = torch.randn(units * 2, n_p, generator=g, dtype=torch.float64)
    a = torch.randn(units * 2, generator=g, dtype=torch.float64)
    b = torch.randn(n_e + n_p, generator=g, dtype=torch.float64)
    return x, W_e, W_p, a, b


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request):
    """Run on one and on two torch threads (kernels take other paths on more than one)."""
    before = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(before)


@pytest.mark.parametrize("width", [0, 1, 5])
@pytest.mark.parametrize("weighted", [False, True])
def test_bag_sum_equals_a_loop_over_the_bags(threads, width, weighted):
    """bag_sum = sum over each bag of its (weighted) rows, empty bags 0; width 0 included
    (torch's float32 embedding_bag raised on a width-0 weight on two threads)."""
    g = torch.Generator().manual_seed(width)
    W = torch.randn(9, width, generator=g, dtype=torch.float32)  # the kernel that raised
    indices = torch.randint(0, 9, (40,), generator=g)
    offsets = torch.tensor([0, 0, 3, 17, 17, 40])  # empty bags first, in the middle and last
    weights = torch.rand(40, generator=g, dtype=torch.float32) if weighted else None
    got = Fn.bag_sum(indices, W, offsets, per_sample_weights=weights)
    ends = offsets.tolist()[1:] + [40]
    want = torch.zeros(len(offsets), width, dtype=torch.float32)
    for bag, (start, end) in enumerate(zip(offsets.tolist(), ends, strict=True)):
        for e in range(start, end):
            want[bag] += W[indices[e]] * (1.0 if weights is None else weights[e])
    assert got.shape == (6, width)
    torch.testing.assert_close(got, want)


@pytest.mark.parametrize("n_e,n_p", [(3, 4), (3, 0), (0, 4)])
@pytest.mark.parametrize("sample", [False, True])
def test_structured_cd1_equals_the_reference_functions(threads, n_e, n_p, sample):
    """structured_cd1 = cd_k_sparse on the full W (engagement rows averaged per item) +
    conditional_cd_sparse started from the same hidden sample."""
    x, W_e, W_p, a, b = _structured_case(n_e, n_p)
    units = W_e.shape[0]
    batch = _sparse_batch(x)
    W = torch.cat([W_e.repeat_interleave(2, dim=0), W_p], dim=1)  # (units * 2, hidden)
    fast = structured_cd1(batch, W_e, W_p, a, b, sample_hidden_units=sample,
                             generator=torch.Generator().manual_seed(5))
    ref = Fn.cd_k_sparse(batch, W, a, b, k=1, n_states=2, sample_hidden_units=sample,
                         generator=torch.Generator().manual_seed(5))
    # The same first draw from the same seed: the joint chain's hidden sample.
    h = Fn.sample_bernoulli(ref.h_0, torch.Generator().manual_seed(5)) if sample else ref.h_0
    torch.testing.assert_close(fast.dW_e, ref.dW.view(units, 2, -1)[:, :, :n_e].mean(dim=1))
    torch.testing.assert_close(fast.da, ref.da)
    torch.testing.assert_close(fast.db[:n_e], ref.db[:n_e])
    torch.testing.assert_close(fast.reconstruction_error, ref.reconstruction_error)
    if n_p:
        dW_p, db_p = Fn.conditional_cd_sparse(batch, W, a, b, ref.h_0, n_states=2,
                                              columns=slice(n_e, None), hidden_sample=h)
        torch.testing.assert_close(fast.dW_p, dW_p)
        torch.testing.assert_close(fast.db[n_e:], db_p)
    else:
        assert fast.dW_p.shape == (units * 2, 0)


def test_structured_cd1_in_bfloat16_stays_close_to_fp32():
    """bf16 products and passes (fp32 weights and statistics) move each statistic by well
    under a percent of its scale on a realistic-sized case."""
    g = torch.Generator().manual_seed(0)
    users, units = 64, 300
    states = torch.randint(0, 3, (users, units), generator=g) * (
        torch.rand(users, units, generator=g) < 0.1)
    x = torch.zeros(users, units, 2, dtype=torch.float32)
    for s in (1, 2):
        x[..., s - 1] = (states == s).float()
    batch = _sparse_batch(x.view(users, -1))
    f32 = {"generator": g, "dtype": torch.float32}
    W_e = torch.randn(units, 16, **f32) * 0.1
    W_p = torch.randn(units * 2, 8, **f32) * 0.1
    a = torch.randn(units * 2, **f32) - 2.0
    b = torch.randn(24, **f32) * 0.1
    exact = structured_cd1(batch, W_e, W_p, a, b, sample_hidden_units=False)
    fast = structured_cd1(batch, W_e, W_p, a, b, sample_hidden_units=False,
                             matmul_dtype=torch.bfloat16)
    for name in ("dW_e", "dW_p", "da", "db", "reconstruction_error"):
        want, got = getattr(exact, name), getattr(fast, name)
        assert got.dtype == torch.float32
        scale = want.abs().max()
        assert (got - want).abs().max() < 0.02 * scale, name


def test_sparse_batch_rows_are_a_batch_of_their_own():
    """Rows [start, stop) of a batch: their entries, renumbered from 0, with empty rows at
    either end and an empty slice."""
    # Rows 0..4 with 0, 2, 0, 3, 1 entries.
    batch = Fn.SparseBatch(row_of=torch.tensor([1, 1, 3, 3, 3, 4]),
                           cols=torch.tensor([5, 7, 0, 2, 9, 4]),
                           offsets=torch.tensor([0, 0, 2, 2, 5]), size=5)
    expected = {
        (0, 2): ([1, 1], [5, 7], [0, 0]),
        (1, 3): ([0, 0], [5, 7], [0, 2]),
        (2, 5): ([1, 1, 1, 2], [0, 2, 9, 4], [0, 0, 3]),
        (4, 5): ([0], [4], [0]),
        (2, 3): ([], [], [0]),
        (5, 5): ([], [], []),
    }
    for (start, stop), (row_of, cols, offsets) in expected.items():
        part = batch.rows(start, stop)
        assert part.size == stop - start
        assert part.row_of.tolist() == row_of
        assert part.cols.tolist() == cols
        assert part.offsets.tolist() == offsets
        torch.testing.assert_close(part.dense(10), batch.dense(10)[start:stop])
