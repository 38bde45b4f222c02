"""MetricsLog writes TensorBoard events without importing torch (tensorboardX would: ~3 s per trainer)."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CHECK = """
import sys
from medjax.train.metrics_log import MetricsLog
log = MetricsLog(sys.argv[1], "cp", 2)
log.write({"step": 1, "loss": 1.5})
log.close()
assert "torch" not in sys.modules, "tensorboardX imported torch"
import torch  # hidden only while tensorboardX was imported
print("ok", torch.__name__)
"""


def test_tensorboard_events_are_written_without_importing_torch(tmp_path):
    proc = subprocess.run([sys.executable, "-c", CHECK, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0 and "ok torch" in proc.stdout, proc.stderr[-3000:]
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path / "tensorboard"))
