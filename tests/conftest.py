"""Session-wide test settings.

A persistent XLA compilation cache shared by this pytest process and the subprocesses it starts
(they inherit the environment): the many short training runs in the suite compile the same tiny
programs, and on 2 cores compiling is most of their time.
"""
import os
import tempfile

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", tempfile.mkdtemp(prefix="medjax-jax-cache-"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
