"""Config files compose one way (train/config.py parent_config, by path) and load from any directory."""
import glob
import os
import subprocess
import sys

import pytest

from medjax.data.config import KINDS
from medjax.data.pipeline import _SHAPES_FOR_KIND
from medjax.train.config import ConfigError, load_config_file, parent_config, validate

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))

# Loads each config the way `python -m medjax.main --config=PATH` does, with one override, and validates it.
LOAD_ALL = """
import sys
from absl import flags
from ml_collections import ConfigDict, config_flags
from medjax.train.config import validate

for path in sys.argv[1:]:
    fv, argv = flags.FlagValues(), ["main", f"--config={path}", "--config.train.seed=7"]
    config_flags.DEFINE_config_file("config", None, "", flag_values=fv, lock_config=True, sys_argv=argv)
    fv(argv)
    c = fv.config
    assert isinstance(c, ConfigDict) and c.train.seed == 7, path
    validate(c)
    print(path, c.stages, c.peft.method)
"""


def test_every_config_loads_from_another_directory(tmp_path):
    """From a cwd outside the repository and with no PYTHONPATH, so `configs` is no importable package."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run([sys.executable, "-c", LOAD_ALL, *CONFIGS], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(proc.stdout.splitlines()) == len(CONFIGS) >= 8


def test_derived_configs_build_on_their_parents():
    path = os.path.join(ROOT, "configs", "{}.py").format
    ift, lora, qlora = (load_config_file(path(n)) for n in ("ift", "ift_lora", "ift_qlora"))
    assert lora.data == ift.data and lora.stages == ift.stages == "ift"
    assert (lora.peft.method, qlora.peft.method) == ("lora", "qlora")
    assert qlora.train == lora.train  # ift_qlora changes only the storage of the base
    cp_ift, cp_ift_ha = load_config_file(path("cp_ift")), load_config_file(path("cp_ift_ha"))
    assert cp_ift_ha.stages == "cp,ift,ha" and cp_ift_ha.cp == cp_ift.cp and cp_ift_ha.ift == cp_ift.ift


def test_parent_config_errors_name_the_files(tmp_path):
    child = tmp_path / "child.py"
    with pytest.raises(FileNotFoundError, match=r"missing\.py: no such config file"):
        parent_config(str(child), "missing.py")
    (tmp_path / "empty.py").write_text("X = 1\n")
    with pytest.raises(ValueError, match=r"empty\.py: defines no get_config"):
        parent_config(str(child), "empty.py")


def test_one_list_of_data_kinds():
    assert tuple(_SHAPES_FOR_KIND) == KINDS
    c = load_config_file(os.path.join(ROOT, "configs", "ift.py"))
    c.ift.kind = "chat"
    with pytest.raises(ConfigError, match=r"config\.ift\.kind: 'chat' is not one of lm, sft, pref"):
        validate(c)
