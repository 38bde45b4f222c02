"""The command-line tools' XLA:CPU default (medjax/xla_cpu.py): YNNPACK's fusions off unless the user chose."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp

from medjax.xla_cpu import YNN_OPTION, prefer_eigen_dots

_COMPILED_DOT_USES_YNN = ("import jax, jax.numpy as jnp\n"
                          "from medjax.xla_cpu import prefer_eigen_dots\n"
                          "prefer_eigen_dots()  # after importing jax, as the tools do\n"
                          "a = jnp.ones((64, 64))\n"
                          "print('__ynn_fusion' in jax.jit(lambda x, y: x @ y).lower(a, a).compile().as_text())\n")


def test_prefer_eigen_dots_appends_the_option_and_keeps_the_users_own():
    env = {}
    assert prefer_eigen_dots(env) and env["XLA_FLAGS"] == f"--{YNN_OPTION}="
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=8"}
    assert prefer_eigen_dots(env) and env["XLA_FLAGS"] == f"--xla_force_host_platform_device_count=8 --{YNN_OPTION}="
    env = {"XLA_FLAGS": f"--{YNN_OPTION}=individual_dot"}
    assert not prefer_eigen_dots(env) and env["XLA_FLAGS"] == f"--{YNN_OPTION}=individual_dot"


def _dot_uses_ynn(xla_flags: str) -> bool:
    env = {**os.environ, "XLA_FLAGS": xla_flags, "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", _COMPILED_DOT_USES_YNN], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip().splitlines()[-1] == "True"


def test_the_option_takes_dots_off_ynnpack_and_a_users_choice_brings_them_back():
    assert not _dot_uses_ynn("")
    assert _dot_uses_ynn(f"--{YNN_OPTION}=individual_dot")


def test_the_suite_computes_as_the_tools_do():
    """tests/conftest.py applies the tools' default to this process and the ones it starts."""
    a = jnp.ones((64, 64))
    assert "__ynn_fusion" not in jax.jit(lambda x, y: x @ y).lower(a, a).compile().as_text()
    assert YNN_OPTION in os.environ["XLA_FLAGS"]
