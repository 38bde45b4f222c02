"""Model spec strings: "hf:DIR_OR_HUB_NAME", "ckpt:DIR", "peft:DIR"."""
from __future__ import annotations

import dataclasses
import os

KINDS = ("hf", "ckpt", "peft")


@dataclasses.dataclass(frozen=True)
class Spec:
    kind: str
    path: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}"


def parse_spec(spec: str) -> Spec:
    kind, sep, path = str(spec).partition(":")
    if not sep or kind not in KINDS or not path:
        raise ValueError(f"model spec {spec!r}: expected one of {', '.join(k + ':PATH' for k in KINDS)}")
    return Spec(kind, os.path.expanduser(path))


def resolve_hf_path(path: str) -> str:
    """A local directory as is; otherwise a hub name fetched into the local HF cache (needs network)."""
    if os.path.isdir(path):
        return path
    if path.startswith(("/", ".", "~")) or os.sep in path.strip("/") and path.count("/") != 1:
        raise FileNotFoundError(f"hf:{path}: no such directory")
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(path, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"])
    except Exception as e:  # offline, gated or unknown repo
        raise FileNotFoundError(f"hf:{path}: not a local directory and could not be fetched from the hub ({e})") from e
