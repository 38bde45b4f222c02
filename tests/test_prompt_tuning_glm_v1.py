"""Prompt tuning on GLM v1 (ChatGLM-6B and GLM-10B flavours): the soft prompt reads as P extra context
tokens in front of every document (positions 0..P-1, block position 0; the document's positions move P
on), every packed document sees it as if alone, only it trains, and KV-cache decoding matches full
recomputation. See the models/glm_v1.py docstring for what the prompt itself attends to."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import medjax
from medjax.checkpoint.params_io import load_params_model, save_params
from medjax.models import glm_v1
from medjax.models.layers import SHARED_SEGMENT
from medjax.peft.config import PeftSettings
from medjax.peft.prompt_tuning import add_soft_prompt, is_prompt_tuned, without_soft_prompt
from medjax.peft.setup import apply_peft, trainable_filter
from peft_checks import assert_packed_documents_as_if_alone, train_steps

MASK, GMASK, SOP, EOP = 50, 51, 54, 55
D = 32
HF = {
    "chatglm": {"model_type": "chatglm", "vocab_size": 64, "hidden_size": D, "num_attention_heads": 4,
                "inner_hidden_size": 48, "max_sequence_length": 64, "bos_token_id": SOP, "eos_token_id": EOP,
                "mask_token_id": MASK, "gmask_token_id": GMASK, "pad_token_id": 3},
    "glm": {"model_type": "glm", "vocab_size": 64, "hidden_size": D, "num_attention_heads": 4,
            "max_sequence_length": 64, "block_position_encoding": True, "mask_token_id": MASK,
            "gmask_token_id": GMASK, "sop_token_id": SOP, "eop_token_id": EOP, "pad_token_id": 0},
}
CONTEXT = np.array([7, 12, 20], np.int32)  # real context tokens the soft prompt stands for (none special)
P = len(CONTEXT)
# [gMASK] <sop> + Part B; a [MASK] in the middle filled after <sop>; <sop> without a blank (the span
# sits right after Part A); no <sop> at all (all context)
ROWS = np.array([[5, 9, 17, 8, GMASK, SOP, 22, 31, 40],
                 [5, MASK, 9, 17, 8, 2, SOP, 22, 31],
                 [6, 7, 8, 9, 10, SOP, 11, 12, 13],
                 [6, 7, 8, 9, 10, 11, 12, 13, 14]], np.int32)


@functools.cache
def _random_base(flavour: str, layers: int):
    """A tiny GLM v1 with every parameter random (biases and norms too), drawn in numpy: eager
    initialisation is slow on 2 cores."""
    cfg = glm_v1.config_from_hf({**HF[flavour], "num_layers": layers})
    graphdef, state = nnx.split(nnx.eval_shape(lambda: glm_v1.build(cfg, nnx.Rngs(0))))
    rng = np.random.default_rng(layers)

    def draw(path, shape):
        centre = 1.0 if path[-1].key == "scale" else 0.0  # LayerNorm scales near 1
        return jnp.asarray(centre + 0.3 * rng.standard_normal(shape.shape), shape.dtype)

    nnx.replace_by_pure_dict(state, jax.tree_util.tree_map_with_path(draw, nnx.to_pure_dict(state)))
    return nnx.merge(graphdef, state)


def base(flavour: str, layers: int = 2):
    return nnx.clone(_random_base(flavour, layers))


def prompted(flavour: str, layers: int = 2):
    """The base with a soft prompt equal to the embeddings of CONTEXT."""
    model = add_soft_prompt(base(flavour, layers), P, rngs=nnx.Rngs(0))
    model.soft_prompt.set_value(model.embed_tokens(jnp.asarray(CONTEXT[None]))[0])
    return model


@functools.partial(jax.jit, static_argnames=("graphdef",))
def _forward(graphdef, state, tokens, positions, segments):
    return nnx.merge(graphdef, state)(tokens, positions, segments)


def logits(model, tokens, segments=None, positions=None):
    tokens = np.asarray(tokens, np.int32)
    segments = np.ones_like(tokens) if segments is None else np.asarray(segments, np.int32)
    if positions is None:
        positions = np.asarray(glm_v1.positions_from_segments(jnp.asarray(segments)))
    graphdef, state = nnx.split(model)
    return np.asarray(_forward(graphdef, state, jnp.asarray(tokens), jnp.asarray(positions, jnp.int32),
                               jnp.asarray(segments)))


def with_context(rows):
    return np.concatenate([np.broadcast_to(CONTEXT, (len(rows), P)), rows], axis=1)


@pytest.mark.parametrize("flavour", ["chatglm", "glm"])
def test_one_layer_soft_prompt_equals_real_context_tokens(flavour):
    """With one layer only the prompt's input keys and values reach the document, so the soft prompt
    and the same P tokens prepended to the ids (Part A / B derived from them) must agree exactly."""
    ours = logits(prompted(flavour, layers=1), ROWS)
    theirs = logits(base(flavour, layers=1), with_context(ROWS))[:, P:]
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


@pytest.mark.parametrize("flavour", ["chatglm", "glm"])
def test_soft_prompt_is_shared_context_with_positions_moved_on(flavour):
    """Two layers: the soft prompt equals the real tokens laid out by hand as a shared segment, at
    positions 0..P-1 / block 0, in front of the document's own 2D positions with the position row
    moved P on (Part B's blank position included, block positions unchanged)."""
    position, block, _ = glm_v1.glm_positions(jnp.asarray(ROWS), jnp.ones_like(ROWS), glm_v1.positions_from_segments(
        jnp.ones_like(ROWS)), base(flavour).special)
    b = len(ROWS)
    prompt_2d = np.stack([np.broadcast_to(np.arange(P), (b, P)), np.zeros((b, P), int)], axis=1)
    doc_2d = np.stack([np.asarray(position) + P, np.asarray(block)], axis=1)
    assert doc_2d[0, 0, 5:].tolist() == [4 + P] * 4 and doc_2d[0, 1, 5:].tolist() == [1, 2, 3, 4]
    assert doc_2d[2, 0, 5:].tolist() == [5 + P] * 4  # no blank: right after Part A
    segments = np.concatenate([np.full((b, P), SHARED_SEGMENT), np.ones_like(ROWS)], axis=1)
    theirs = logits(base(flavour), with_context(ROWS), segments, np.concatenate([prompt_2d, doc_2d], axis=2))
    np.testing.assert_allclose(logits(prompted(flavour), ROWS), theirs[:, P:], atol=1e-5)


@pytest.mark.parametrize("flavour", ["chatglm", "glm"])
def test_every_packed_document_sees_the_prompt_as_if_alone(flavour):
    model = prompted(flavour)
    docs = [np.array([5, 9, 17, 8, GMASK, SOP, 22, 31], np.int32), np.array([6, MASK, 9, 12, SOP, 40, 41], np.int32)]
    assert_packed_documents_as_if_alone(lambda tokens, segments: logits(model, tokens, segments), docs)


def test_only_the_soft_prompt_trains():
    model = apply_peft(base("chatglm"), PeftSettings(method="prompt", num_virtual_tokens=P))
    before = nnx.to_pure_dict(nnx.state(model))
    tokens = np.array([[5, 9, 17, 8, GMASK, SOP, 22, 31, 40, 6, MASK, 9, 12, SOP, 40, 41]] * 2, np.int32)
    segments = np.array([[1] * 9 + [2] * 7] * 2, np.int32)
    batch = {"tokens": tokens, "targets": np.roll(tokens, -1, axis=1),
             "loss_mask": (np.isin(np.arange(16), [5, 6, 7, 13, 14])[None] * np.ones((2, 1))).astype(np.float32),
             "segment_ids": segments, "positions": np.asarray(glm_v1.positions_from_segments(jnp.asarray(segments)))}
    trainable = trainable_filter(PeftSettings(method="prompt"))
    graphdef, params, _ = nnx.split(model, trainable, ...)
    assert list(nnx.to_pure_dict(params)) == ["soft_prompt"] and params["soft_prompt"].shape == (P, D)
    state, frozen, losses = train_steps(model, trainable, batch, 3, lr=5e-2)
    assert losses[-1] < losses[0], losses
    after = nnx.to_pure_dict(nnx.state(nnx.merge(graphdef, state["params"], frozen)))
    assert np.abs(after.pop("soft_prompt") - before.pop("soft_prompt")).max() > 1e-3
    jax.tree.map(lambda x, y: np.testing.assert_array_equal(np.asarray(x), np.asarray(y)), after, before)


def decoding_positions(prompt, length):
    """ChatGLM-6B's decoding positions [1, 2, length]: Part A counts up to the first <sop>; from it on every
    token sits at the blank ([gMASK] if there is one, else the first [MASK]) with block positions 1, 2, ...
    (a generated <sop> does not open a new span, so derived positions would differ once one appears)."""
    sop = prompt.index(SOP)
    blank = prompt.index(GMASK if GMASK in prompt else MASK)
    slots = np.arange(length)
    return np.stack([np.where(slots < sop, slots, blank), np.maximum(slots - sop + 1, 0)])[None]


@pytest.mark.parametrize("flavour", ["chatglm", "glm"])
def test_greedy_generation_with_cache_equals_recomputation(flavour):
    model = prompted(flavour)
    cache = model.init_cache(2, 8)
    assert cache["k"].shape[2] == 8 + P and int(cache["index"]) == P
    assert (np.asarray(cache["segment_ids"])[:, :P] == SHARED_SEGMENT).all()
    prompts = [[5, 9, 17], [6, 7, 8, 9, 10, 11], [5, MASK, 9, 17, SOP]]  # the first two get [gMASK] <sop>
    steps = 6
    got = medjax.LM(model).generate(prompts, max_new_tokens=steps, eos_id=-1)
    for prompt, new in zip(prompts, got):
        prompt = model.generation_prompt(prompt)
        row = np.zeros((1, 16), np.int32)  # no cache: one full forward per step over one shape
        row[0, :len(prompt)] = prompt
        positions = decoding_positions(prompt, 16)
        for i in range(steps):
            n = len(prompt) + i
            step_logits = logits(model, row, (np.arange(16) < n)[None].astype(np.int32), positions)
            row[0, n] = int(np.argmax(step_logits[0, n - 1]))
        assert new == row[0, len(prompt):len(prompt) + steps].tolist()


def test_checkpoint_round_trip_keeps_the_prompt(tmp_path):
    model = prompted("chatglm")
    save_params(str(tmp_path), model)
    PeftSettings(method="prompt", num_virtual_tokens=P).save(str(tmp_path))
    loaded, _ = load_params_model(str(tmp_path))
    assert is_prompt_tuned(loaded) and type(loaded).prompt_base_class is glm_v1.GLMv1LM
    np.testing.assert_array_equal(logits(loaded, ROWS), logits(model, ROWS))


def test_without_soft_prompt_is_the_base():
    model = prompted("chatglm")
    plain = without_soft_prompt(model)
    assert type(plain) is glm_v1.GLMv1LM and not hasattr(plain, "soft_prompt")
    np.testing.assert_array_equal(logits(plain, ROWS), logits(base("chatglm"), ROWS))
    assert np.abs(logits(model, ROWS) - logits(plain, ROWS)).max() > 1e-3  # the prompt matters


def test_unsupported_backbone_is_a_clear_error():
    class OtherLM(nnx.Module):
        config = glm_v1.config_from_hf({**HF["chatglm"], "num_layers": 1})

    with pytest.raises(ValueError, match=r"backbone OtherLM is not supported; supported: DecoderLM, GLMv1LM"):
        add_soft_prompt(OtherLM(), P, rngs=nnx.Rngs(0))
