"""Preference losses against the published formulas, written again here in numpy (float64)."""
import jax.numpy as jnp
import numpy as np
import pytest

from medjax.train.preference import PreferenceSettings, pair_losses, preference_loss, segment_logps


def np_logsig(x):
    return -np.logaddexp(0.0, -x)


def np_dpo(pc, pr, rc, rr, beta, eps):
    z = beta * ((pc - rc) - (pr - rr))
    return -(1 - eps) * np_logsig(z) - eps * np_logsig(-z)


def np_ipo(pc, pr, rc, rr, beta):
    return ((pc - rc) - (pr - rr) - 1 / (2 * beta)) ** 2


def np_orpo(pc, pr, nc, nr, beta):
    mc, mr = pc / nc, pr / nr
    log_odds = (mc - np.log1p(-np.exp(mc))) - (mr - np.log1p(-np.exp(mr)))
    return -mc - beta * np_logsig(log_odds)


def np_simpo(pc, pr, nc, nr, beta, gamma, eps):
    z = beta * (pc / nc - pr / nr) - gamma
    return -(1 - eps) * np_logsig(z) - eps * np_logsig(-z)


def random_pairs(seed, n=64, scale=30.0):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 40, size=(n, 2)).astype(np.float64)
    logps = -rng.uniform(0.01, scale, size=(n, 2)) * counts  # mean log-prob in (-scale, -0.01)
    refs = -rng.uniform(0.01, scale, size=(n, 2)) * counts
    return logps, counts, refs


def run(settings, logps, counts, refs=None):
    out = pair_losses(settings, jnp.asarray(logps, jnp.float32), jnp.asarray(counts, jnp.float32),
                      None if refs is None else jnp.asarray(refs, jnp.float32))
    return [np.asarray(x, np.float64) for x in out]


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("beta, eps", [(0.1, 0.0), (0.5, 0.2)])
def test_dpo_matches_the_formula(seed, beta, eps):
    logps, counts, refs = random_pairs(seed)
    loss, chosen, rejected = run(PreferenceSettings("dpo", "copy", beta, label_smoothing=eps), logps, counts, refs)
    pc, pr, rc, rr = logps[:, 0], logps[:, 1], refs[:, 0], refs[:, 1]
    np.testing.assert_allclose(loss, np_dpo(pc, pr, rc, rr, beta, eps), rtol=2e-5, atol=2e-5)
    np.testing.assert_allclose(chosen, beta * (pc - rc), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(rejected, beta * (pr - rr), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("seed", range(4))
def test_ipo_matches_the_formula(seed):
    logps, counts, refs = random_pairs(seed, scale=1.0)
    loss, _, _ = run(PreferenceSettings("ipo", "copy", 0.3), logps, counts, refs)
    want = np_ipo(logps[:, 0], logps[:, 1], refs[:, 0], refs[:, 1], 0.3)
    np.testing.assert_allclose(loss, want, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("seed", range(4))
def test_orpo_matches_the_formula(seed):
    logps, counts, _ = random_pairs(seed, scale=8.0)
    loss, chosen, rejected = run(PreferenceSettings("orpo", "none", 0.25), logps, counts)
    np.testing.assert_allclose(loss, np_orpo(logps[:, 0], logps[:, 1], counts[:, 0], counts[:, 1], 0.25),
                               rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(chosen, 0.25 * logps[:, 0] / counts[:, 0], rtol=1e-5)
    np.testing.assert_allclose(rejected, 0.25 * logps[:, 1] / counts[:, 1], rtol=1e-5)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("eps", [0.0, 0.1])
def test_simpo_matches_the_formula(seed, eps):
    logps, counts, _ = random_pairs(seed)
    loss, _, _ = run(PreferenceSettings("simpo", "none", 2.0, gamma=0.7, label_smoothing=eps), logps, counts)
    want = np_simpo(logps[:, 0], logps[:, 1], counts[:, 0], counts[:, 1], 2.0, 0.7, eps)
    np.testing.assert_allclose(loss, want, rtol=2e-5, atol=2e-5)


def test_sft_weight_adds_the_chosen_mean_nll():
    logps, counts, refs = random_pairs(7)
    plain, _, _ = run(PreferenceSettings("dpo", "copy", 0.1), logps, counts, refs)
    with_sft, _, _ = run(PreferenceSettings("dpo", "copy", 0.1, sft_weight=0.5), logps, counts, refs)
    np.testing.assert_allclose(with_sft - plain, 0.5 * -logps[:, 0] / counts[:, 0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("loss", ["dpo", "ipo", "orpo", "simpo"])
def test_extreme_margins_stay_finite_with_finite_gradients(loss):
    import jax

    # huge margins both ways, a mean log-prob of exactly 0 (ORPO's odds blow up there) and -1e4
    logps = jnp.array([[-1e5, -1e-9], [-1e-9, -1e5], [0.0, 0.0], [-1e4, -3e4], [-3e4, 0.0]], jnp.float32)
    counts = jnp.array([[1, 1], [1, 1], [3, 5], [1, 2], [2, 2]], jnp.float32)
    refs = jnp.array([[0.0, -1e5], [-1e5, 0.0], [0.0, 0.0], [-5e4, 0.0], [0.0, -1e4]], jnp.float32)
    s = PreferenceSettings(loss, "none" if loss in ("orpo", "simpo") else "copy", 0.5, gamma=1.0,
                           label_smoothing=0.1 if loss in ("dpo", "simpo") else 0.0, sft_weight=0.1)

    def total(lp):
        return preference_loss(s, lp, counts, None if s.reference == "none" else refs)[0]

    value, grad = jax.value_and_grad(total)(logps)
    assert np.isfinite(float(value)), value
    assert np.all(np.isfinite(np.asarray(grad))), grad
    for x in pair_losses(s, logps, counts, None if s.reference == "none" else refs):
        assert np.all(np.isfinite(np.asarray(x))), (loss, x)


def test_padding_rows_do_not_count_and_ties_are_half_right():
    logps = jnp.array([[-2.0, -3.0], [-5.0, -4.0], [-1.0, -1.0], [0.0, 0.0]], jnp.float32)
    counts = jnp.array([[2, 2], [2, 2], [1, 1], [0, 0]], jnp.float32)  # the last row is padding
    s = PreferenceSettings("dpo", "copy", 1.0)
    loss, pairs, metrics = preference_loss(s, logps, counts, jnp.zeros_like(logps))
    assert float(pairs) == 3
    assert float(metrics["pref_accuracy"]) == pytest.approx((1 + 0 + 0.5) / 3)
    want = np.mean(np_dpo(np.array([-2.0, -5.0, -1.0]), np.array([-3.0, -4.0, -1.0]), 0, 0, 1.0, 0.0))
    assert float(loss) == pytest.approx(want, rel=1e-6)
    assert float(metrics["reward_margin"]) == pytest.approx((1 - 1 + 0) / 3, abs=1e-6)


def test_segment_logps_sum_response_tokens_of_each_segment_in_fp32():
    rng = np.random.default_rng(0)
    b, t, v = 2, 10, 7
    logits = rng.normal(size=(b, t, v)) * 5
    targets = rng.integers(0, v, size=(b, t))
    segment_ids = np.array([[1] * 4 + [2] * 5 + [0], [1] * 3 + [2] * 3 + [0] * 4])
    loss_mask = np.array([[0, 1, 1, 0, 0, 0, 1, 1, 0, 0], [0, 1, 0, 0, 1, 0, 0, 0, 0, 0]], np.float32)
    batch = {"targets": jnp.asarray(targets), "segment_ids": jnp.asarray(segment_ids),
             "loss_mask": jnp.asarray(loss_mask)}
    logps, counts = segment_logps(jnp.asarray(logits, jnp.bfloat16), batch)
    assert logps.dtype == jnp.float32
    lp = np.asarray(jnp.asarray(logits, jnp.bfloat16).astype(jnp.float32), np.float64)
    token_logp = lp - np.log(np.exp(lp).sum(-1, keepdims=True))
    picked = np.take_along_axis(token_logp, targets[..., None], -1)[..., 0] * loss_mask
    for seg in (1, 2):
        np.testing.assert_allclose(np.asarray(logps)[:, seg - 1], (picked * (segment_ids == seg)).sum(-1),
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(np.asarray(counts)[:, seg - 1], (loss_mask * (segment_ids == seg)).sum(-1))
