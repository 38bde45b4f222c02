"""A QLoRA stage keeps the full-precision starting weights on the host and sends the decoder kernels
to the device one layer at a time to be quantised, so a model whose full-precision weights do not
fit on the accelerators can still be QLoRA-tuned. The result equals quantising on the device."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from medjax.checkpoint.params_io import save_params
from medjax.parallel.mesh import make_mesh
from medjax.peft import quantized
from medjax.peft.quantized import QuantizedLinear
from medjax.train.config import training_config
from medjax.train.model_init import initial_model
from medjax.train.trainables import prepare_trainable
from tests.hf_fixtures import make_hf_llama


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("hf_llama"))
    make_hf_llama(d, tokenizer=True, vocab_size=32000)
    return d


def qlora_config(init: str, quant: str = "nf4"):
    c = training_config("ift")
    c.model.init = init
    c.peft.method, c.peft.quant, c.peft.targets = "qlora", quant, "q,v"
    return c


def kernels(model) -> dict:
    return {path: v for path, v in nnx.to_flat_state(nnx.state(model, nnx.Param)) if path[-1] == "kernel"}


def quantise_inputs(monkeypatch) -> list:
    """Records the shape and kind (host or device) of every array handed to the quantiser."""
    seen = []
    real = quantized.quantise

    def recording(w, fmt, what="kernel"):
        seen.append((tuple(w.shape), isinstance(w, jax.Array)))
        return real(w, fmt, what)

    monkeypatch.setattr(quantized, "quantise", recording)
    return seen


@pytest.mark.parametrize("quant", ["nf4", "int8"])
def test_qlora_from_hf_quantises_host_weights_one_layer_at_a_time(hf_dir, monkeypatch, quant):
    mesh = make_mesh()
    model, _, _ = initial_model(qlora_config(f"hf:{hf_dir}", quant), 0, mesh)
    host = kernels(model)
    assert host and all(isinstance(v.get_value(), np.ndarray) for v in host.values())
    expected = {path: quantized.quantise(jnp.asarray(v.get_value()), quant) for path, v in host.items()
                if path[0] == "layers"}

    seen = quantise_inputs(monkeypatch)
    model, _ = prepare_trainable(qlora_config(f"hf:{hf_dir}", quant), model)
    # 7 decoder kernels per stack, each sent as its 2 layers one by one, none as a whole stack
    assert len(seen) == 7 * 2 and all(len(shape) == 2 and not on_device for shape, on_device in seen), seen
    quantised = {tuple(path): m for path, m in nnx.iter_modules(model) if isinstance(m, QuantizedLinear)}
    assert len(quantised) == len(expected) == 7
    for path, want in expected.items():
        module = quantised.get(path[:-1]) or quantised[path[:-1] + ("base",)]  # k, or q inside its LoRALinear
        got = module._arrays()
        assert set(got) == set(want)
        for name in want:  # bitwise what quantising the whole stack on the device gives
            np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(want[name]), err_msg=f"{path} {name}")


def test_qlora_from_a_ckpt_parent_starts_on_the_host(hf_dir, tmp_path):
    import medjax

    lm = medjax.load(f"hf:{hf_dir}")
    save_params(str(tmp_path), lm.model, lm.tokenizer)
    model, tokenizer, origin = initial_model(qlora_config("scratch"), 0, make_mesh(), parent_spec=f"ckpt:{tmp_path}")
    assert origin == f"ckpt:{tmp_path}" and tokenizer.vocab_size == 32000
    assert all(isinstance(v.get_value(), np.ndarray) for v in kernels(model).values())
