"""third_party/: the pinned dependency sets per platform agree with pyproject's ranges and with one
another, and launch/ installs them."""
import os
import re
import subprocess
import tomllib

from packaging.requirements import Requirement

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
THIRD_PARTY = os.path.join(ROOT, "third_party")


def pins(name: str) -> dict[str, Requirement]:
    """package -> requirement of a requirements file, following its -r includes."""
    out = {}
    for line in open(os.path.join(THIRD_PARTY, name)):
        line = line.split("#")[0].strip()
        if line.startswith("-r "):
            out.update(pins(line[3:].strip()))
        elif line:
            req = Requirement(line)
            out[req.name.lower().replace("_", "-")] = req
    return out


def test_every_runtime_dependency_is_pinned_inside_pyprojects_range():
    project = tomllib.load(open(os.path.join(ROOT, "pyproject.toml"), "rb"))["project"]
    common = pins("requirements-common.txt")
    for dependency in project["dependencies"]:
        want = Requirement(dependency)
        pinned = common[want.name.lower().replace("_", "-")]
        version = re.fullmatch(r"==(.+)", str(pinned.specifier)).group(1)
        assert want.specifier.contains(version), f"{pinned} is outside pyproject's {want}"


def test_platforms_share_one_jax_and_add_only_their_backend():
    cpu, tpu, gpu = (pins(f"requirements-{p}.txt") for p in ("cpu", "tpu", "gpu"))
    assert cpu == pins("requirements-common.txt")
    assert str(tpu["jax"].specifier) == str(gpu["jax"].specifier) == str(cpu["jax"].specifier)
    assert tpu["jax"].extras == {"tpu"} and "libtpu" in tpu
    assert gpu["jax"].extras == {"cuda12"} and str(gpu["jax-cuda12-plugin"].specifier) == str(cpu["jax"].specifier)
    # the test pins (references the suite compares against) agree with the runtime set
    for line in open(os.path.join(THIRD_PARTY, "constraints-test.txt")):
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            if req.name in cpu:
                assert req.specifier == cpu[req.name].specifier, (line, cpu[req.name])


def test_launchers_install_the_pinned_sets(tmp_path):
    out = subprocess.run(["bash", os.path.join(ROOT, "launch", "tpu_pod.sh"), "pod1", "us-central2-b", "v4-8", "--",
                          "true"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "DRY_RUN": "1", "MEDJAX_REPO": "https://example.org/medjax.git"})
    assert "pip install -q -r third_party/requirements-tpu.txt" in out.stdout, out.stdout + out.stderr
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "srun").write_text('#!/bin/sh\necho "srun $*"\n')
    (fake_bin / "srun").chmod(0o755)
    out = subprocess.run(["bash", os.path.join(ROOT, "launch", "slurm_gpu.sbatch"), "configs/cp_ift.py"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PATH": f"{fake_bin}:{os.environ['PATH']}", "MEDJAX_INSTALL": "1"})
    assert "pip install -q -r third_party/requirements-gpu.txt -e ." in out.stdout, out.stdout + out.stderr


def test_the_formats_notice_names_a_version_for_every_format():
    rows = [line for line in open(os.path.join(THIRD_PARTY, "FORMATS.md")) if line.startswith("| ")][2:]
    assert len(rows) >= 15
    for row in rows:
        verified = row.split("|")[3]
        assert re.search(r"\d+\.\d+|@ [0-9a-f]{8}|[0-9a-f]{12}|reference|stub", verified), row
