"""launch/: the Colab notebook's code cells run on CPU (its TPU cell skips itself by a check), and
the pod / SLURM scripts are valid bash whose dry run prints the expected command sequence."""
from __future__ import annotations

import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "launch")
NOTEBOOK = os.path.join(LAUNCH, "colab_tpu_demo.ipynb")
# the notebook's own knob for short runs: tiny model, two steps per stage, no benchmark
DEMO_OVERRIDES = {"model.preset": "test", "train.seq_len": 64, "train.batch_size": 4, "cp.steps": 2,
                  "ift.steps": 2, "train.warmup_steps": 1, "train.eval_every": 0, "train.eval_batches": 1,
                  "eval.tasks": "", "export_hf": False, "checkpoint.async_save": False}
RUN_CELLS = """
import json, sys
namespace = {}
for cell in json.load(open(sys.argv[1]))["cells"]:
    if cell["cell_type"] == "code":
        exec(compile("".join(cell["source"]), "notebook cell", "exec"), namespace)
"""


def code_cells():
    with open(NOTEBOOK) as f:
        return ["".join(c["source"]) for c in json.load(f)["cells"] if c["cell_type"] == "code"]


def test_notebook_keeps_a_tpu_only_cell_behind_a_backend_check():
    assert any('if jax.default_backend() == "tpu":' in cell for cell in code_cells())
    assert not any(line.lstrip().startswith(("!", "%")) for cell in code_cells() for line in cell.splitlines())


def test_notebook_code_cells_run_on_cpu(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "MEDJAX_DEMO_OVERRIDES": json.dumps(DEMO_OVERRIDES),
           "MEDJAX_DEMO_WORKDIR": str(tmp_path / "run")}
    proc = subprocess.run([sys.executable, "-c", RUN_CELLS, NOTEBOOK], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "backend: cpu" in proc.stdout
    assert "[ift] step 2/2" in proc.stdout
    assert "What is the first-line treatment" in proc.stdout
    summary = json.load(open(tmp_path / "run" / "summary.json"))
    assert set(summary["stages"]) == {"cp", "ift"}
