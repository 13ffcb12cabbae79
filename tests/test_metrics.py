import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from sdekc_jax.metrics import (
    ari,
    cluster_acc,
    count_changed,
    count_changed_jax,
    max_weight_assignment_jax,
    evaluate,
    match_labels,
    nmi,
)


# ---------------------------------------------------------------------------- accuracy


def test_acc_perfect_up_to_permutation():
    assert cluster_acc([0, 0, 1, 1, 2, 2], [1, 1, 0, 0, 2, 2]) == 1.0


def test_acc_hand_computed():
    # cluster 1 -> class 0 (2 points), clusters 2 and 0 each hold one point of classes 1 and 2.
    assert cluster_acc([0, 0, 1, 1, 2, 2], [1, 1, 2, 0, 0, 2]) == pytest.approx(4 / 6)
    # cluster 1 -> 0 (2), cluster 0 -> 1 (1), cluster 2 -> 2 (2)
    assert cluster_acc([0, 0, 1, 1, 2, 2], [1, 1, 0, 2, 2, 2]) == pytest.approx(5 / 6)


def test_acc_rectangular():
    assert cluster_acc([0, 0, 1, 1], [0, 0, 0, 0]) == 0.5  # fewer clusters than classes
    assert cluster_acc([0, 0, 1, 1], [0, 1, 2, 3]) == 0.5  # more clusters than classes
    assert cluster_acc([0, 0, 0, 1, 1, 1], [0, 0, 1, 2, 2, 3]) == pytest.approx(4 / 6)


def test_acc_arbitrary_label_values():
    assert cluster_acc([5, 5, 9, 9], [-1, -1, 7, 7]) == 1.0
    assert cluster_acc(np.array(["a", "a", "b"]), np.array([3, 3, 3])) == pytest.approx(2 / 3)


def test_metrics_permutation_invariant():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 5, size=300)
    y_pred = np.where(rng.random(300) < 0.7, y_true, rng.integers(0, 5, size=300))
    perm = rng.permutation(5)
    ref = evaluate(y_true, y_pred)
    permuted = evaluate(y_true, perm[y_pred])
    assert permuted == pytest.approx(ref)
    assert evaluate(perm[y_true], y_pred) == pytest.approx(ref)


# ---------------------------------------------------------------------------- NMI / ARI


def test_nmi_hand_computed():
    # y_pred = [0,0,0,1]: H(T) = ln 2, H(P) = H(3/4, 1/4), I = H(T) - 3/4 * H(2/3, 1/3).
    def h(*p):
        return -sum(q * math.log(q) for q in p)

    mi = h(0.5, 0.5) - 0.75 * h(2 / 3, 1 / 3)
    expected = mi / ((h(0.5, 0.5) + h(0.75, 0.25)) / 2)
    assert nmi([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(expected)
    assert nmi([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)
    assert nmi([0, 0, 1, 1], [0, 0, 0, 0]) == pytest.approx(0.0)


def test_ari_hand_computed():
    assert ari([0, 0, 1, 1], [1, 1, 0, 0]) == pytest.approx(1.0)
    # contingency [[2,0],[1,1]] (rows true): sum C(n_ij,2)=1, a: C(2,2)+C(2,2)=2, b: C(3,2)+0=3
    # expected = 2*3/C(4,2)=1, max = (2+3)/2 = 2.5 -> ARI = (1-1)/(2.5-1) = 0
    assert ari([0, 0, 1, 1], [0, 0, 0, 1]) == pytest.approx(0.0)


def test_nmi_ari_equal_sklearn():
    rng = np.random.default_rng(1)
    for _ in range(5):
        y_true = rng.integers(0, 7, size=200)
        y_pred = rng.integers(0, 4, size=200)
        assert nmi(y_true, y_pred) == pytest.approx(
            normalized_mutual_info_score(y_true, y_pred, average_method="arithmetic")
        )
        assert ari(y_true, y_pred) == pytest.approx(adjusted_rand_score(y_true, y_pred))


def test_evaluate_returns_python_floats_and_accepts_jax():
    res = evaluate(jnp.array([0, 0, 1, 1, 2, 2]), jnp.array([1, 1, 0, 0, 2, 2]))
    assert set(res) == {"acc", "nmi", "ari"}
    assert all(type(v) is float for v in res.values())
    assert res == pytest.approx({"acc": 1.0, "nmi": 1.0, "ari": 1.0})


@pytest.mark.parametrize("fn", [cluster_acc, nmi, ari, evaluate])
@pytest.mark.parametrize(
    "a,b",
    [([0, 1, 2], [0, 1]), ([], []), ([[0, 1]], [[0, 1]]), (np.zeros((2, 2)), np.zeros(4))],
)
def test_bad_input(fn, a, b):
    with pytest.raises(ValueError):
        fn(a, b)


# ---------------------------------------------------------------------------- label matching


def test_match_labels():
    ref = np.array([0, 0, 1, 1, 2, 2])
    labels = np.array([2, 2, 0, 0, 1, 1])
    out = match_labels(ref, labels, 3)
    np.testing.assert_array_equal(out, ref)
    assert out.dtype == np.int32
    # one point differs: the best map still relabels the rest exactly
    labels[0] = 1
    np.testing.assert_array_equal(match_labels(ref, labels, 3), [2, 0, 1, 1, 2, 2])


def test_match_labels_unused_cluster():
    # cluster 3 is empty in both; best permutation still maps 0->1, 1->0
    np.testing.assert_array_equal(match_labels([1, 1, 0], [0, 0, 1], 4), [1, 1, 0])


def test_count_changed_hand_computed():
    prev = [0, 0, 1, 1, 2, 2]
    assert count_changed(prev, [1, 1, 2, 2, 0, 0], 3) == 0
    assert count_changed(prev, [1, 1, 2, 0, 0, 0], 3) == 1
    assert type(count_changed(prev, prev, 3)) is int


def test_count_changed_bad_input():
    with pytest.raises(ValueError):
        count_changed([0, 1, 3], [0, 1, 2], 3)  # label out of range
    with pytest.raises(ValueError):
        count_changed([0, 1, -1], [0, 1, 2], 3)
    with pytest.raises(ValueError):
        count_changed([0, 1], [0, 1, 2], 3)
    with pytest.raises(ValueError):
        count_changed([], [], 3)
    with pytest.raises(ValueError):
        match_labels([0.5, 1], [0, 1], 2)
    with pytest.raises(ValueError):
        count_changed_jax(jnp.zeros((2, 3), jnp.int32), jnp.zeros((2, 3), jnp.int32), 3)
    with pytest.raises(ValueError):
        count_changed_jax(jnp.zeros(3, jnp.int32), jnp.zeros(4, jnp.int32), 3)


def _random_pairs(seed, n_pairs=20, n=500, k=6):
    rng = np.random.default_rng(seed)
    for _ in range(n_pairs):
        prev = rng.integers(0, k, size=n)
        new = rng.permutation(k)[prev]
        flip = rng.random(n) < rng.uniform(0, 0.8)
        new[flip] = rng.integers(0, k, size=flip.sum())
        yield prev, new, k


def test_count_changed_permuted_is_zero():
    rng = np.random.default_rng(3)
    prev = rng.integers(0, 8, size=1000)
    new = rng.permutation(8)[prev]
    assert count_changed(prev, new, 8) == 0
    assert int(jax.jit(count_changed_jax, static_argnums=2)(prev, new, 8)) == 0


def test_count_changed_jax_matches_numpy_under_jit():
    f = jax.jit(count_changed_jax, static_argnums=2)
    for prev, new, k in _random_pairs(0):
        out = f(jnp.asarray(prev), jnp.asarray(new), k)
        assert out.shape == () and out.dtype == jnp.int32
        assert int(out) == count_changed(prev, new, k)
        np.testing.assert_array_equal(  # consistent with match_labels too
            int(np.sum(match_labels(prev, new, k) != prev)), int(out)
        )


def test_count_changed_jax_vmap():
    pairs = list(_random_pairs(1, n_pairs=4, n=100, k=5))
    prevs = jnp.asarray(np.stack([p for p, _, _ in pairs]))
    news = jnp.asarray(np.stack([n for _, n, _ in pairs]))
    out = jax.jit(jax.vmap(lambda a, b: count_changed_jax(a, b, 5)))(prevs, news)
    assert out.shape == (4,)
    np.testing.assert_array_equal(out, [count_changed(p, n, 5) for p, n, _ in pairs])


def test_count_changed_jax_inside_while_loop():
    """Iterate like a clustering loop: stop when fewer than `tol` points change."""
    pairs = list(_random_pairs(2, n_pairs=6, n=300, k=4))
    seq = jnp.asarray(np.stack([p for p, _, _ in pairs] + [pairs[-1][0]]))  # last step: no change
    expected = [count_changed(np.asarray(seq[i]), np.asarray(seq[i + 1]), 4) for i in range(len(seq) - 1)]

    def cond(state):
        i, changed, _ = state
        return (i < seq.shape[0] - 1) & (changed > 0)

    def body(state):
        i, _, total = state
        changed = count_changed_jax(seq[i], seq[i + 1], 4)
        return i + 1, changed, total + changed

    i, last, total = jax.jit(lambda: jax.lax.while_loop(cond, body, (0, jnp.int32(1), jnp.int32(0))))()
    assert int(i) == len(seq) - 1
    assert int(last) == 0
    assert int(total) == sum(expected)


@pytest.mark.parametrize("k", [1, 3, 7, 12])
def test_max_weight_assignment_jax_reaches_scipys_optimum(k):
    """Vmapped over 60 random matrices per size: integer counts with many ties (small ranges) and
    large ones, and float weights. The total weight equals scipy's exactly (integers) and the
    result is a permutation (which one, among tied optima, may differ from scipy's)."""
    from scipy.optimize import linear_sum_assignment
    rng = np.random.default_rng(k)
    ints = np.stack([rng.integers(0, hi, size=(k, k)) for hi in [2, 3, 10, 10**6] * 15]).astype(np.int32)
    floats = rng.normal(size=(20, k, k)).astype(np.float32)
    f = jax.jit(jax.vmap(max_weight_assignment_jax))
    for w, exact in ((ints, True), (floats, False)):
        perms = np.asarray(f(jnp.asarray(w)))
        assert perms.dtype == np.int32
        for wi, p in zip(w, perms):
            assert sorted(p.tolist()) == list(range(k))
            r, c = linear_sum_assignment(wi, maximize=True)
            got, best = wi[np.arange(k), p].sum(), wi[r, c].sum()
            assert got == best if exact else abs(got - best) < 1e-4


def test_max_weight_assignment_jax_hand_computed_and_bad_input():
    w = jnp.asarray([[1, 5, 0], [4, 4, 0], [0, 0, 2]], jnp.int32)  # greedy row 0 -> 1, then row 1 -> 0: 5+4+2
    assert np.asarray(jax.jit(max_weight_assignment_jax)(w)).tolist() == [1, 0, 2]
    for bad in (jnp.zeros((2, 3)), jnp.zeros((0, 0)), jnp.zeros(3)):
        with pytest.raises(ValueError, match="square"):
            max_weight_assignment_jax(bad)
