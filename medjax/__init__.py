"""medjax: turn general LLMs (LLaMA, GLM) into medical experts with JAX/Flax.

Importing medjax has no side effects: no distributed start-up, no downloads, and the heavy modules
load only when `load` or `LM` is first used.
"""
__version__ = "0.1.0"
__all__ = ["load", "LM"]


def __getattr__(name):
    if name in __all__:
        from medjax import api

        return getattr(api, name)
    raise AttributeError(f"module 'medjax' has no attribute {name!r}")
