"""Preference losses (DPO, IPO, ORPO, SimPO) on per-sequence log-probabilities.

A preference row holds one pair (medjax/data/packing.py): segment 1 = prompt + chosen, segment 2 =
prompt + rejected, loss_mask 1 on response tokens only. `segment_logps` turns the logits of such
rows (`segment_sums` their per-token log-probs) into per-response log-prob sums; `preference_loss`
turns those into the loss, the pair count (the micro-batch weight) and the logged metrics.
Everything is computed in fp32 whatever the model's compute dtype.

Formulas (pc, pr: policy log-probs of chosen / rejected, summed over response tokens; rc, rr: the
reference's; |y|: response length; beta, gamma, eps = label smoothing):
  dpo    -(1-eps) logsig(beta h) - eps logsig(-beta h),  h = (pc - rc) - (pr - rr)   (Rafailov 2023)
  ipo    (h - 1 / (2 beta))^2                                                         (Azar 2023)
  orpo   -pc/|yc| - beta logsig(log odds(pc/|yc|) - log odds(pr/|yr|)),
         odds(p) = p / (1 - p) on the mean per-token probability                     (Hong 2024)
  simpo  -(1-eps) logsig(z) - eps logsig(-z),  z = beta (pc/|yc| - pr/|yr|) - gamma    (Meng 2024)
plus `sft_weight * (-pc/|yc|)` for any loss. Rewards (logged): beta (p - r) for dpo/ipo, beta p/|y|
for orpo/simpo; pref_accuracy counts a tie as half.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

LOSSES = ("dpo", "ipo", "orpo", "simpo")
REFERENCE_FREE = ("orpo", "simpo")
DEFAULT_BETA = {"dpo": 0.1, "ipo": 0.1, "orpo": 0.1, "simpo": 2.0}
# ORPO's log-odds need p < 1: mean log-probs are kept at most this far below 0
_MAX_MEAN_LOGP = -1e-6


@struct.dataclass
class PreferenceSettings:
    """The static settings of a preference objective (all compile-time constants)."""
    loss: str = struct.field(pytree_node=False)
    reference: str = struct.field(pytree_node=False)  # copy | base | precomputed | none
    beta: float = struct.field(pytree_node=False)
    gamma: float = struct.field(pytree_node=False, default=0.0)
    label_smoothing: float = struct.field(pytree_node=False, default=0.0)
    sft_weight: float = struct.field(pytree_node=False, default=0.0)


def settings_from_config(stage_cfg) -> PreferenceSettings:
    """The settings of a `pref` stage section (config.ha): reference-free losses get reference='none'."""
    loss = stage_cfg.loss
    beta = stage_cfg.beta if stage_cfg.beta is not None else DEFAULT_BETA[loss]
    reference = "none" if loss in REFERENCE_FREE else stage_cfg.reference
    return PreferenceSettings(loss=loss, reference=reference, beta=float(beta), gamma=float(stage_cfg.gamma),
                              label_smoothing=float(stage_cfg.label_smoothing),
                              sft_weight=float(stage_cfg.sft_weight))


def segment_logps(logits_BxTxV, batch):
    """(log-prob sums, token counts), each [B, 2]: column 0 the chosen response, column 1 the rejected."""
    logits = logits_BxTxV.astype(jnp.float32)
    logz_BxT = jax.nn.logsumexp(logits, axis=-1)
    target_logit_BxT = jnp.take_along_axis(logits, batch["targets"][..., None], axis=-1)[..., 0]
    return segment_sums(target_logit_BxT - logz_BxT, batch)


def segment_sums(logp_BxT, batch):
    """segment_logps from per-token target log-probs [B, T] (e.g. train/chunked_loss.py's, negated)."""
    logp_BxT = logp_BxT.astype(jnp.float32) * batch["loss_mask"].astype(jnp.float32)
    in_segment_BxTx2 = (batch["segment_ids"][..., None] == jnp.array([1, 2])).astype(jnp.float32)
    counted_BxT = (batch["loss_mask"] > 0).astype(jnp.float32)
    return (jnp.einsum("bt,bts->bs", logp_BxT, in_segment_BxTx2),
            jnp.einsum("bt,bts->bs", counted_BxT, in_segment_BxTx2))


def _smoothed_logistic_loss(z, label_smoothing: float):
    return -(1.0 - label_smoothing) * jax.nn.log_sigmoid(z) - label_smoothing * jax.nn.log_sigmoid(-z)


def _log1m_exp(x):
    """log(1 - exp(x)) for x < 0, accurate at both ends (Maechler 2012)."""
    return jnp.where(x > -0.6931472, jnp.log(-jnp.expm1(x)), jnp.log1p(-jnp.exp(x)))


def pair_losses(s: PreferenceSettings, logp_Bx2, count_Bx2, ref_logp_Bx2=None):
    """Per-pair (loss, reward_chosen, reward_rejected), each [B]."""
    logp_Bx2 = logp_Bx2.astype(jnp.float32)
    mean_logp_Bx2 = logp_Bx2 / jnp.maximum(count_Bx2, 1.0)
    nll_chosen_B = -mean_logp_Bx2[:, 0]
    if s.loss in ("dpo", "ipo"):
        if ref_logp_Bx2 is None:
            raise ValueError(f"{s.loss} needs reference log-probs (ha.reference={s.reference!r})")
        reward_Bx2 = logp_Bx2 - ref_logp_Bx2.astype(jnp.float32)
        h_B = reward_Bx2[:, 0] - reward_Bx2[:, 1]
        if s.loss == "dpo":
            loss_B = _smoothed_logistic_loss(s.beta * h_B, s.label_smoothing)
        else:
            loss_B = jnp.square(h_B - 1.0 / (2.0 * s.beta))
        reward_Bx2 = s.beta * reward_Bx2
    elif s.loss == "orpo":
        mean_Bx2 = jnp.minimum(mean_logp_Bx2, _MAX_MEAN_LOGP)
        log_odds_Bx2 = mean_Bx2 - _log1m_exp(mean_Bx2)
        loss_B = nll_chosen_B - s.beta * jax.nn.log_sigmoid(log_odds_Bx2[:, 0] - log_odds_Bx2[:, 1])
        reward_Bx2 = s.beta * mean_logp_Bx2
    elif s.loss == "simpo":
        z_B = s.beta * (mean_logp_Bx2[:, 0] - mean_logp_Bx2[:, 1]) - s.gamma
        loss_B = _smoothed_logistic_loss(z_B, s.label_smoothing)
        reward_Bx2 = s.beta * mean_logp_Bx2
    else:
        raise ValueError(f"unknown preference loss {s.loss!r}; known: {LOSSES}")
    if s.sft_weight:
        loss_B = loss_B + s.sft_weight * nll_chosen_B
    return loss_B, reward_Bx2[:, 0], reward_Bx2[:, 1]


def preference_loss(s: PreferenceSettings, logp_Bx2, count_Bx2, ref_logp_Bx2=None):
    """(mean loss over real pairs, number of real pairs, metrics) for one micro-batch.

    Padding rows (no response tokens in one of the segments) count for nothing.
    """
    loss_B, chosen_B, rejected_B = pair_losses(s, logp_Bx2, count_Bx2, ref_logp_Bx2)
    real_B = jnp.all(count_Bx2 > 0, axis=-1).astype(jnp.float32)
    pairs = jnp.sum(real_B)

    def mean(x_B):
        return jnp.sum(jnp.where(real_B > 0, x_B, 0.0)) / jnp.maximum(pairs, 1.0)

    wins_B = (chosen_B > rejected_B).astype(jnp.float32) + 0.5 * (chosen_B == rejected_B)
    mean_logp_Bx2 = logp_Bx2 / jnp.maximum(count_Bx2, 1.0)
    loss = mean(loss_B)
    metrics = {"loss": loss, "reward_chosen": mean(chosen_B), "reward_rejected": mean(rejected_B),
               "reward_margin": mean(chosen_B - rejected_B), "pref_accuracy": mean(wins_B),
               "logp_chosen": mean(mean_logp_Bx2[:, 0]), "logp_rejected": mean(mean_logp_Bx2[:, 1])}
    return loss, pairs, metrics
