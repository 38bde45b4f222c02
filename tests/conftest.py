"""Session-wide test settings.

A persistent XLA compilation cache shared by this pytest process and the subprocesses it starts
(they inherit the environment): the many short training runs in the suite compile the same tiny
programs, and on 2 cores compiling is most of their time.
"""
import os
import tempfile

from medjax.xla_cpu import prefer_eigen_dots

# The suite runs on CPU. With the `tpu` extra installed (CI installs it for the TPU compile tests), jax would
# otherwise try to start libtpu in every process and log its failure; TPU topologies for `plan` still work.
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="medjax-jax-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
# the suite computes as the command-line tools do (medjax/xla_cpu.py), and its subprocesses inherit it
prefer_eigen_dots()
