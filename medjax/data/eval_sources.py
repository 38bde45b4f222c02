"""Named held-out sets: `data.eval` as {name: source}, each evaluated and logged on its own.

`data.eval` takes three forms:
  - one source (a path, or a list of source dicts): one held-out set, logged as eval_<metric>;
  - a dict {name: source}: one set per name, logged as eval_<metric>/<name> beside the overall
    eval_<metric> over all their tokens. From the command line:
    --config.cp.data.eval="{'medical': 'a.txt', 'general': 'b.txt'}" (a Python dict literal), or
    --config.cp.data.eval.general=b.txt when the config file already names the sources;
  - a string "name=path,name=path": the same dict, easier to type
    (--config.cp.data.eval=medical=a.txt,general=b.txt). A string naming an existing file or
    directory stays a path, even with '=' in it.
A named source is anything `data.eval` takes for one source, or a single source dict {path, format, ...}.
"""
from __future__ import annotations

import copy
import os
import re

from medjax.data.mixture import parse_sources
from medjax.data.pipeline import build_eval_batches
from medjax.data.records import DataError

SINGLE = ""  # the key of the one held-out set of a single-source data.eval (its metrics: eval_<metric>)
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]*$")  # a name ends up in metric keys and TensorBoard tags


def named_eval_sources(spec, what: str = "data.eval") -> dict | None:
    """{name: source list} when `spec` names its sources; None for one source (or None: split from train)."""
    if isinstance(spec, str):
        if "=" not in spec or os.path.exists(spec):
            return None
        pairs = [part.partition("=") for part in spec.split(",")]
        if any(not sep or not path.strip() for _, sep, path in pairs):
            raise DataError(f"{what}={spec!r}: expected one path, or name=path pairs separated by commas")
        names = [name.strip() for name, _, _ in pairs]
        if len(set(names)) != len(names):
            raise DataError(f"{what}={spec!r}: a name appears twice")
        named = {name: path.strip() for name, (_, _, path) in zip(names, pairs)}
    elif hasattr(spec, "items"):
        named = dict(spec.items())
    else:
        return None
    if not named:
        raise DataError(f"{what}: an empty dict names no held-out source")
    checked = {}
    for name, source in named.items():
        if not isinstance(name, str) or not _NAME.match(name):
            raise DataError(f"{what}: source name {name!r} must start with a letter and hold only letters, "
                            "digits, '_', '-' or '.' (it becomes the metric eval_loss/<name>)")
        source = [dict(source.items())] if hasattr(source, "items") else source  # one source dict
        parse_sources(source, f"{what}.{name}")  # bad keys, weights or an unset path fail here, named
        checked[name] = source
    return checked


def build_eval_sets(cfg, tokenizer, max_batches: int, what: str = "data.eval", **kwargs) -> dict[str, list]:
    """{name: at most `max_batches` host batches} per named source, or {SINGLE: batches} for one
    source; {} when there is no held-out data. `kwargs` go to `pipeline.build_eval_batches`."""
    named = named_eval_sources(cfg.eval, what)
    if named is None:
        batches = build_eval_batches(cfg, tokenizer, **kwargs)[:max_batches]
        return {SINGLE: batches} if batches else {}
    sets = {}
    for name, source in named.items():
        one = copy.deepcopy(cfg)
        one.eval = source
        try:
            batches = build_eval_batches(one, tokenizer, **kwargs)[:max_batches]
        except DataError as e:
            raise DataError(f"{what}.{name}: {e}") from None
        if not batches:
            raise DataError(f"{what}.{name}: {source!r} holds no record with a labelled token to evaluate")
        sets[name] = batches
    return sets


def flatten(sets: dict[str, list]) -> list:
    """Every set's batches in one list, in set order (`regroup` undoes it)."""
    return [batch for batches in sets.values() for batch in batches]


def regroup(sets: dict[str, list], flat: list) -> dict[str, list]:
    """`flat` (one new batch per batch of `flatten(sets)`, same order) cut back into `sets`' groups."""
    rest = iter(flat)
    return {name: [next(rest) for _ in batches] for name, batches in sets.items()}
