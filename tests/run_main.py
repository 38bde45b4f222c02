"""`python -m medjax.main` in a subprocess from the repository root, as a user runs it; its stdout."""
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(workdir, config: str, *flags, timeout: int = 1200) -> str:
    cmd = [sys.executable, "-m", "medjax.main", f"--config={config}", f"--workdir={workdir}", *flags]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout
