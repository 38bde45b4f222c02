"""Importing medjax has no side effects (medjax/__init__.py promises it): in a fresh interpreter, in an
empty directory, `import medjax` and its lazy exports (which import medjax.api and the model code)
initialise no JAX backend, start no distributed runtime, write nothing and open no connection."""
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, os, socket, sys

attempts = []
def refuse(*args, **kwargs):
    attempts.append(repr(args)[:200])
    raise OSError("network use during import")
socket.socket.connect = socket.socket.connect_ex = socket.getaddrinfo = socket.create_connection = refuse

import medjax
medjax.LM, medjax.load  # the lazy exports: medjax.api, jax, flax, the models
from jax._src import distributed, xla_bridge

print(json.dumps({
    "backends": sorted(xla_bridge._backends),
    "distributed": distributed.global_state.client is not None or distributed.global_state.service is not None,
    "network": attempts,
    "api_loaded": "medjax.api" in sys.modules,
}))
"""


def test_import_initialises_no_backend_and_writes_nothing(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {**os.environ, "PYTHONPATH": ROOT, "HOME": str(home)}
    out = subprocess.run([sys.executable, "-c", CHILD], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert report["api_loaded"]
    assert report["backends"] == [], f"importing medjax initialised JAX backends {report['backends']}"
    assert not report["distributed"], "importing medjax started jax.distributed"
    assert report["network"] == [], f"importing medjax opened connections: {report['network']}"
    created = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert created == ["home"], f"importing medjax created {created}"
