"""Tiny configs of every GLM variant (transformers glm / glm4, ChatGLM-6B, GLM-10B) for tests that only
need shapes (abstract models: no weights, no compiles)."""
from medjax.models import glm, glm_v1

HF = dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
          num_key_value_heads=2, head_dim=16)
V1 = dict(vocab_size=64, hidden_size=32, num_layers=2, num_attention_heads=4, max_sequence_length=32,
          mask_token_id=50, gmask_token_id=51)
GLM_CONFIGS = {
    "glm": lambda: glm.config_from_hf({"model_type": "glm", **HF}),
    "glm4": lambda: glm.config_from_hf({"model_type": "glm4", **HF}),
    "chatglm6b": lambda: glm_v1.config_from_hf({"model_type": "chatglm", "inner_hidden_size": 48,
                                                "bos_token_id": 54, "eos_token_id": 55, **V1}),
    "glm10b": lambda: glm_v1.config_from_hf({"model_type": "glm", "block_position_encoding": True,
                                             "sop_token_id": 54, "eop_token_id": 55, **V1}),
}
