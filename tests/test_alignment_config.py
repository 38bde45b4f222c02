"""HA config errors name their key, before anything runs."""
import pytest

from medjax.train.config import validate
from test_alignment_support import tiny_ha


@pytest.mark.parametrize("key, value, message", [
    ("loss", "kto", "config.ha.loss"),
    ("reference", "frozen", "config.ha.reference"),
    ("beta", -0.1, "config.ha.beta"),
    ("label_smoothing", 0.5, "config.ha.label_smoothing"),
    ("objective", "lm", "config.ha.objective"),
])
def test_bad_alignment_settings_name_the_key(key, value, message):
    c = tiny_ha("copy")
    c.ha[key] = value
    with pytest.raises(ValueError, match=message):
        validate(c)


def test_the_ha_stage_defaults_to_dpo_with_a_copied_reference():
    c = tiny_ha("copy")
    validate(c)
    assert (c.ha.kind, c.ha.objective, c.ha.loss, c.ha.reference) == ("pref", "preference", "dpo", "copy")


def test_base_reference_without_lora_is_an_error(tmp_path):
    from medjax.train.pipeline import run

    c = tiny_ha("base", steps=1)
    with pytest.raises(ValueError, match="reference='base'.*no LoRA adapters"):
        run(c, str(tmp_path))
