"""Which layers get adapters: chosen by role (q, k, v, o, gate, up, down, lm_head, embed), by group
(attn, mlp, all) or by a glob over module paths such as "layers/attn/*". Roles name what a layer
does, so the same targets work for LLaMA, GLM/GLM-4 (shared decoder) and GLM v1 (which has no gate).
"all" is every decoder-layer Linear, like peft's "all-linear": the LM head and the token embedding
table (role "embed", a LoRAEmbed) are adapted only when named.
"""
from __future__ import annotations

import fnmatch

from flax import nnx

from medjax.models.layers import Embed, Linear

GROUPS = {
    "attn": ("q", "k", "v", "o"),
    "mlp": ("gate", "up", "down"),
    "all": ("q", "k", "v", "o", "gate", "up", "down"),  # every decoder-layer Linear (not the LM head)
}


def adaptable_layers(model) -> dict[str, tuple]:
    """'layers/attn/q' -> module path, for every Linear and token Embed in the model."""
    return {"/".join(map(str, path)): tuple(path) for path, m in nnx.iter_modules(model)
            if isinstance(m, (Linear, Embed))}


def parse_targets(targets) -> list[str]:
    items = targets.split(",") if isinstance(targets, str) else list(targets)
    items = [t.strip() for t in items if t and t.strip()]
    if not items:
        raise ValueError("peft.targets: names no layer (e.g. 'attn', 'q,v', 'all', 'layers/mlp/*')")
    return items


def resolve_targets(model, targets) -> list[tuple]:
    """Module paths of the layers that `targets` selects. A target matching nothing is an error that
    lists the available layer names."""
    layers = adaptable_layers(model)
    chosen: dict[str, tuple] = {}
    for item in parse_targets(targets):
        roles = GROUPS.get(item)
        if roles is not None:  # a group matches whichever of its roles the backbone has
            hits = [n for n, p in layers.items() if p[-1] in roles and n.startswith("layers/")]
        else:
            hits = [n for n, p in layers.items() if p[-1] == item or fnmatch.fnmatchcase(n, item)]
        if not hits:
            known_roles = sorted({p[-1] for p in layers.values()})
            raise ValueError(f"peft.targets: {item!r} matches no Linear layer; available layers: "
                             f"{', '.join(sorted(layers))} (roles: {', '.join(known_roles)}; "
                             f"groups: {', '.join(GROUPS)})")
        for n in hits:
            chosen[n] = layers[n]
    normalised = [n for n, path in chosen.items() if getattr(_module_at(model, path), "normalize_kernel", False)]
    if normalised:  # Baichuan2's NormHead: a low-rank update of a normalised kernel has no merged form
        raise ValueError(f"peft.targets: {', '.join(normalised)} normalises its kernel (Baichuan2's NormHead); "
                         "an adapter there could not be merged or exported: leave it out of peft.targets")
    return [chosen[n] for n in sorted(chosen)]


def _module_at(model, path: tuple):
    for name in path:
        model = getattr(model, name) if isinstance(name, str) else model[name]
    return model
