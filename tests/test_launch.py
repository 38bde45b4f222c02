"""launch/: the Colab notebook's code cells run on CPU (its TPU cell skips itself by a check; its real-model
part gets a tiny local LLaMA, a local SFT file and the shared MedQA sample in place of the hub), and the
pod and SLURM scripts run the expected commands (a dry run; a stand-in srun)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.hf_fixtures import make_hf_llama
from tests.shared_data import shared_data

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = os.path.join(ROOT, "launch")
NOTEBOOK = os.path.join(LAUNCH, "colab_tpu_demo.ipynb")
# the notebook's own knob for short runs: tiny model, two steps per stage, no benchmark
DEMO_OVERRIDES = {"model.preset": "test", "train.seq_len": 64, "train.batch_size": 4, "cp.steps": 2,
                  "ift.steps": 2, "train.warmup_steps": 1, "train.eval_every": 0, "train.eval_batches": 1,
                  "eval.tasks": "", "export_hf": False, "checkpoint.async_save": False}
# the real-model part: two LoRA steps, four MedQA questions before and after (one scoring batch each)
REAL_OVERRIDES = {"train.seq_len": 128, "train.batch_size": 4, "train.steps": 2, "train.warmup_steps": 1,
                  "train.eval_every": 0, "train.eval_batches": 1, "eval.limit": 4, "eval.batch_size": 16,
                  "export_hf": False, "checkpoint.async_save": False}
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


def write_alpaca_sft(path):
    """A few Alpaca records (the layout of medalpaca/medical_meadow_medqa) from the embedded instructions."""
    with open(os.path.join(ROOT, "medjax", "assets", "default", "sft.jsonl")) as f:
        dialogues = [json.loads(line)["conversations"] for line in f][:32]
    with open(path, "w") as f:
        for turns in dialogues:
            f.write(json.dumps({"instruction": turns[-2]["value"], "input": "", "output": turns[-1]["value"]}) + "\n")


def test_notebook_code_cells_run_on_cpu(tmp_path):
    make_hf_llama(str(tmp_path / "llama"), seed=1, tokenizer=True, vocab_size=32000, max_position_embeddings=1024)
    write_alpaca_sft(tmp_path / "sft.jsonl")
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "MEDJAX_DEMO_OVERRIDES": json.dumps(DEMO_OVERRIDES),
           "MEDJAX_DEMO_WORKDIR": str(tmp_path / "run"), "MEDJAX_DEMO_MODEL": f"hf:{tmp_path / 'llama'}",
           "MEDJAX_DEMO_SFT": str(tmp_path / "sft.jsonl"), "MEDJAX_DEMO_MEDQA": os.path.dirname(
               os.path.dirname(shared_data("benchmarks/medqa_usmle/sample.jsonl"))),
           "MEDJAX_DEMO_REAL_OVERRIDES": json.dumps(REAL_OVERRIDES), "MEDJAX_DEMO_REAL_WORKDIR": str(tmp_path / "real")}
    proc = subprocess.run([sys.executable, "-c", RUN_CELLS, NOTEBOOK], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "backend: cpu" in proc.stdout
    assert "[ift] step 2/2" in proc.stdout
    assert "What is the first-line treatment" in proc.stdout
    summary = json.load(open(tmp_path / "run" / "summary.json"))
    assert set(summary["stages"]) == {"cp", "ift"}
    # the real-model part: the local model, LoRA-tuned, MedQA scored before and after on the same questions
    real = json.load(open(tmp_path / "real" / "summary.json"))
    assert set(real["stages"]) == {"ift"} and real["stages"]["ift"]["steps"] == 2
    lineage = json.load(open(tmp_path / "real" / "ift" / "lineage.json"))
    assert lineage["parent"] == f"hf:{tmp_path / 'llama'}" and lineage["config"]["peft"]["method"] == "lora"
    assert "MedQA (sample, n=4) accuracy: before " in proc.stdout


def run_script(args, tmp_path, env=None):
    proc = subprocess.run(["bash", *args], cwd=tmp_path, env={**os.environ, **(env or {})}, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_tpu_pod_dry_run_creates_installs_runs_everywhere_then_deletes(tmp_path):
    out = run_script([os.path.join(LAUNCH, "tpu_pod.sh"), "pod1", "us-central2-b", "v4-32", "--", "python", "-m",
                      "medjax.main", "--config=configs/cp_ift.py", "--config.mesh.fsdp=-1"], tmp_path,
                     {"DRY_RUN": "1", "MEDJAX_REPO": "https://example.org/medjax.git"})
    calls = [line for line in out.splitlines() if line.startswith("gcloud ")]
    assert [c.split()[4] for c in calls] == ["create", "ssh", "ssh", "delete"]
    assert "--accelerator-type=v4-32" in calls[0]
    assert "--worker=all" in calls[1] and "pip install -q -e ." in calls[1]
    assert "--worker=all" in calls[2] and "MEDJAX_DISTRIBUTED=1 python -m medjax.main" in calls[2]


def test_tpu_pod_without_a_command_prints_usage(tmp_path):
    proc = subprocess.run(["bash", os.path.join(LAUNCH, "tpu_pod.sh"), "pod1"], cwd=tmp_path, capture_output=True,
                          text=True)
    assert proc.returncode == 2 and "tpu_pod.sh NAME ZONE ACCELERATOR --" in proc.stderr


def test_slurm_script_starts_one_distributed_medjax_per_task(tmp_path):
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    srun = fake_bin / "srun"  # records what the job step would run
    srun.write_text('#!/bin/sh\necho "srun $* MEDJAX_DISTRIBUTED=$MEDJAX_DISTRIBUTED"\n')
    srun.chmod(0o755)
    out = run_script([os.path.join(LAUNCH, "slurm_gpu.sbatch"), "configs/cp_ift.py", "--workdir=/shared/run"],
                     tmp_path, {"PATH": f"{fake_bin}:{os.environ['PATH']}"})
    assert "python -m medjax.main --config=configs/cp_ift.py --workdir=/shared/run" in out
    assert "MEDJAX_DISTRIBUTED=1" in out
