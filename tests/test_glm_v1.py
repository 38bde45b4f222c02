"""GLM v1 (ChatGLM-6B and GLM-10B flavours) against the independent numpy reference in
tests/reference/glm_v1_numpy.py, plus the prefix-LM mask, 2D positions, generation and layout I/O."""
from __future__ import annotations

import json
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import medjax
from medjax.checkpoint.hf_io import TensorStore, write_safetensors
from medjax.checkpoint.hf_model import config_from_hf_dir
from medjax.models.glm_v1 import glm_positions, positions_from_segments

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "reference"))
import glm_v1_numpy as ref  # noqa: E402

MASK, GMASK, SMASK, SOP, EOP = 50, 51, 52, 54, 55
D, H, L, F, V = 32, 4, 2, 48, 64
CONFIGS = {
    "chatglm": {"model_type": "chatglm", "architectures": ["ChatGLMModel"], "vocab_size": V, "hidden_size": D,
                "num_layers": L, "num_attention_heads": H, "inner_hidden_size": F, "layernorm_epsilon": 1e-5,
                "max_sequence_length": 64, "position_encoding_2d": True, "bos_token_id": SOP, "eos_token_id": EOP,
                "mask_token_id": MASK, "gmask_token_id": GMASK, "pad_token_id": 3},
    "glm": {"model_type": "glm", "architectures": ["GLMModel"], "vocab_size": V, "hidden_size": D, "num_layers": L,
            "num_attention_heads": H, "max_sequence_length": 32, "block_position_encoding": True,
            "relative_encoding": False, "attention_scale": 1.0, "mask_token_id": MASK, "gmask_token_id": GMASK,
            "smask_token_id": SMASK, "sop_token_id": SOP, "eop_token_id": EOP, "pad_token_id": 0},
}
# context with [gMASK] then <sop> + Part B; a [MASK] in the middle; [MASK] and [gMASK] (the span
# fills the [gMASK]); a row with no <sop> (all context)
ROWS = np.array([[5, 9, 17, 8, GMASK, SOP, 22, 31, 40],
                 [5, MASK, 9, 17, 8, 2, SOP, 22, 31],
                 [5, MASK, 9, 17, GMASK, SOP, 22, 31, 40],
                 [6, 7, 8, 9, 10, 11, 12, 13, 14]])


def _original_weights(flavour: str, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    r = lambda *shape: (0.3 * rng.standard_normal(shape)).astype(np.float32)  # noqa: E731
    norm = lambda: (1.0 + 0.2 * rng.standard_normal(D)).astype(np.float32)  # noqa: E731
    stack = "transformer." if flavour == "chatglm" else "glm.transformer."
    inner = F if flavour == "chatglm" else 4 * D
    w = {("transformer.word_embeddings.weight" if flavour == "chatglm" else "glm.word_embeddings.weight"): r(V, D),
         stack + "final_layernorm.weight": norm(), stack + "final_layernorm.bias": r(D)}
    if flavour == "chatglm":
        w["lm_head.weight"] = r(V, D)
    else:
        rows = CONFIGS["glm"]["max_sequence_length"] + 1
        w[stack + "position_embeddings.weight"] = r(rows, D)
        w[stack + "block_position_embeddings.weight"] = r(rows, D)
    for i in range(L):
        p = f"{stack}layers.{i}."
        w.update({p + "input_layernorm.weight": norm(), p + "input_layernorm.bias": r(D),
                  p + "post_attention_layernorm.weight": norm(), p + "post_attention_layernorm.bias": r(D),
                  p + "attention.query_key_value.weight": r(3 * D, D), p + "attention.query_key_value.bias": r(3 * D),
                  p + "attention.dense.weight": r(D, D), p + "attention.dense.bias": r(D),
                  p + "mlp.dense_h_to_4h.weight": r(inner, D), p + "mlp.dense_h_to_4h.bias": r(inner),
                  p + "mlp.dense_4h_to_h.weight": r(D, inner), p + "mlp.dense_4h_to_h.bias": r(D)})
    return w


def _reference(flavour, weights, ids):
    fn = ref.chatglm6b_logits if flavour == "chatglm" else ref.glm10b_logits
    return fn(weights, CONFIGS[flavour], ids)


@pytest.fixture(scope="module", params=["chatglm", "glm"])
def checkpoint(request, tmp_path_factory):
    flavour = request.param
    path = tmp_path_factory.mktemp(flavour)
    weights = _original_weights(flavour)
    write_safetensors(os.path.join(path, "model.safetensors"), weights)
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(CONFIGS[flavour], f)
    return flavour, weights, str(path), medjax.load(f"hf:{path}")


def test_logits_match_numpy_reference(checkpoint):
    flavour, weights, _, lm = checkpoint
    assert lm.config.family == "glm_v1" and lm.config.extra["flavour"] == flavour
    ours = lm.logits(ROWS)
    for row, got in zip(ROWS, ours):
        np.testing.assert_allclose(got, _reference(flavour, weights, row), atol=1e-4, rtol=0)


def test_part_b_never_changes_part_a(checkpoint):
    _, _, _, lm = checkpoint
    changed = ROWS.copy()  # whole batch: the shape compiled by the parity test
    changed[0, -1] = 33  # the last Part B token
    a, b = lm.logits(ROWS), lm.logits(changed)
    np.testing.assert_array_equal(a[0, :-1], b[0, :-1])  # Part A and earlier Part B tokens
    assert not np.allclose(a[0, -1], b[0, -1])


def test_part_a_attends_bidirectionally(checkpoint):
    _, _, _, lm = checkpoint
    changed = ROWS.copy()
    changed[0, 3] = 30  # a later context token
    a, b = lm.logits(ROWS), lm.logits(changed)
    assert not np.allclose(a[0, 0], b[0, 0], atol=1e-6)  # the first token saw it


def test_round_trip_writes_the_original_layout(checkpoint, tmp_path):
    flavour, weights, _, lm = checkpoint
    lm.save(f"hf:{tmp_path}")
    store = TensorStore(str(tmp_path))
    assert set(store.keys()) == set(weights)
    for name, value in weights.items():
        np.testing.assert_array_equal(np.asarray(store.get(name)), value, err_msg=name)
    np.testing.assert_array_equal(medjax.load(f"hf:{tmp_path}").logits(ROWS), lm.logits(ROWS))


def test_greedy_generation_follows_the_gmask_sop_protocol(checkpoint):
    flavour, weights, _, lm = checkpoint
    prompts = [[5, 9, 17, 8], [7, 12, 30]]
    ours = lm.generate(prompts, max_new_tokens=5, temperature=0.0)
    for prompt, got in zip(prompts, ours):
        ids = prompt + [GMASK, SOP]  # what ChatGLM-6B's tokenizer appends
        expected = []
        for _ in range(5):
            nxt = int(np.argmax(_reference(flavour, weights, ids)[-1]))
            expected.append(nxt)
            ids.append(nxt)
            if nxt == EOP:
                break
        assert got == expected


def test_2d_positions_for_packed_rows_with_several_blanks():
    # segment 1: Part A = 10 11 [MASK] 12 [sMASK] 13, then two spans; segment 2: 5 6 [gMASK], one span
    tokens = jnp.array([[10, 11, MASK, 12, SMASK, 13, SOP, 20, 21, SOP, 30, 5, 6, GMASK, SOP, 7]])
    segments = jnp.array([[1] * 11 + [2] * 5])
    special = {"sop": SOP, "gmask": GMASK, "masks": [MASK, SMASK, GMASK]}
    derive = jax.jit(lambda tok, seg: glm_positions(tok, seg, positions_from_segments(seg), special))
    position, block, part_a = derive(tokens, segments)
    np.testing.assert_array_equal(position[0], [0, 1, 2, 3, 4, 5, 2, 2, 2, 4, 4, 0, 1, 2, 2, 2])
    np.testing.assert_array_equal(block[0], [0, 0, 0, 0, 0, 0, 1, 2, 3, 1, 2, 0, 0, 0, 1, 2])
    np.testing.assert_array_equal(part_a[0], [1] * 6 + [0] * 5 + [1] * 3 + [0] * 2)


def test_reference_positions_agree_with_the_original_rule():
    pos2d, visible = ref.positions_and_mask([5, 9, GMASK, SOP, 22, 31], SOP, MASK, GMASK)
    np.testing.assert_array_equal(pos2d, [[0, 1, 2, 2, 2, 2], [0, 0, 0, 1, 2, 3]])
    assert visible[0, 2] == 1 and visible[0, 3] == 0 and visible[4, 3] == 1 and visible[3, 4] == 0


def _write_config(directory, config):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    return str(directory)


@pytest.mark.parametrize("flavour,field", [("chatglm", "inner_hidden_size"), ("chatglm", "gmask_token_id"),
                                           ("glm", "sop_token_id"), ("glm", "max_sequence_length")])
def test_missing_field_is_named(tmp_path, flavour, field):
    config = {k: v for k, v in CONFIGS[flavour].items() if k != field}
    with pytest.raises(KeyError, match=field):
        config_from_hf_dir(_write_config(tmp_path, config))


def test_unknown_variant_is_named():
    from medjax.models.glm_v1 import check_config
    from medjax.models.config import ModelConfig

    with pytest.raises(ValueError, match="unknown GLM variant"):
        check_config(ModelConfig(family="glm_v1", extra={"flavour": "glm130b"}))
