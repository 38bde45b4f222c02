""".ci/run runs exactly the README's test command, and that command installs the pinned references."""
import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _read(*parts):
    with open(os.path.join(ROOT, *parts)) as f:
        return f.read()


def test_ci_runs_the_readme_test_command_with_the_pinned_references():
    commands = [line for line in _read("README.md").splitlines() if line.endswith("python -m pytest -q")]
    assert len(commands) == 1, f"README.md: expected one test command line, found {commands}"
    assert "-c third_party/constraints-test.txt" in commands[0]
    assert commands[0] in _read(".ci", "run").splitlines()
    pins = dict(re.findall(r"^([a-z]+)==(\S+)$", _read("third_party", "constraints-test.txt"), re.M))
    assert {"transformers", "tokenizers", "peft", "torch"} <= set(pins)
