"""ActivationCache: every intermediate array of a forward pass, by TransformerLens name.

Arrays are read-only and shown in TransformerLens shapes ([batch, pos, d_model],
[batch, head, query_pos, key_pos], ...). Shorthand lookup works like TransformerLens:
`cache["pattern", 1]` is `cache["blocks.1.attn.hook_pattern"]`, `cache["resid_pre", 0]`
is `cache["blocks.0.hook_resid_pre"]`. After a backward pass that recorded them, the
gradient of the loss with respect to an activation is stored as `name + "_grad"`
(`cache["pattern_grad", 1]` works too).
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping

import numpy as np

# shorthand -> full-name template ({l} = layer)
SHORTHANDS = {
    "embed": "hook_embed",
    "pos_embed": "hook_pos_embed",
    "resid_pre": "blocks.{l}.hook_resid_pre",
    "ln1": "blocks.{l}.ln1.hook_normalized",
    "normalized": "blocks.{l}.ln1.hook_normalized",
    "q": "blocks.{l}.attn.hook_q",
    "k": "blocks.{l}.attn.hook_k",
    "v": "blocks.{l}.attn.hook_v",
    "rot_q": "blocks.{l}.attn.hook_rot_q",
    "rot_k": "blocks.{l}.attn.hook_rot_k",
    "attn_scores": "blocks.{l}.attn.hook_attn_scores",
    "scores": "blocks.{l}.attn.hook_attn_scores",
    "pattern": "blocks.{l}.attn.hook_pattern",
    "z": "blocks.{l}.attn.hook_z",
    "result": "blocks.{l}.attn.hook_result",
    "attn_out": "blocks.{l}.hook_attn_out",
    "resid_post": "blocks.{l}.hook_resid_post",
    "ln_final": "ln_final.hook_normalized",
    "logits": "hook_logits",
}


def full_name(key) -> str:
    """A full cache name from a full name, a shorthand, or (shorthand, layer)."""
    if isinstance(key, tuple):
        if len(key) != 2 or not isinstance(key[1], (int, np.integer)):
            raise KeyError(f"cache key {key!r}: expected (shorthand, layer), e.g. ('pattern', 1)")
        short, layer = key[0], int(key[1])
        suffix = ""
        if short.endswith("_grad") and short not in SHORTHANDS:
            short, suffix = short[: -len("_grad")], "_grad"
        if short not in SHORTHANDS:
            raise KeyError(f"unknown shorthand {short!r}; known: {sorted(SHORTHANDS)}")
        return SHORTHANDS[short].format(l=layer) + suffix
    if key in SHORTHANDS and "{l}" not in SHORTHANDS[key]:
        return SHORTHANDS[key]
    return key


def unknown_name_message(name, known) -> str:
    close = difflib.get_close_matches(name, list(known), n=4, cutoff=0.5)
    hint = f"; close names: {close}" if close else f"; names look like {sorted(known)[:6]}"
    return f"unknown cache name {name!r}{hint}"


class _Lazy:
    __slots__ = ("compute",)

    def __init__(self, compute):
        self.compute = compute


class ActivationCache(Mapping):
    """Read-only mapping name -> array (TransformerLens shapes)."""

    def __init__(self):
        self._arrays = {}
        self._earlier_passes = {}     # multi-pass forward: the passes before this one
        self._pass_name = "main"

    def _store(self, name, array):
        # the only way in: used by the model's site function and by backward for *_grad
        array.flags.writeable = False
        self._arrays[name] = array

    def _store_lazy(self, name, compute):
        """An entry computed by compute() when first read (the model's per-head results:
        nothing downstream needs them unless they are clamped), then kept like any other."""
        self._arrays[name] = _Lazy(compute)

    def _store_internal(self, name, array, to_tl):
        """The model's array in its internal layout: shown as array.transpose(to_tl), a
        view made when first read (most never are)."""
        self._arrays[name] = (array, to_tl)

    def __getitem__(self, key):
        name = full_name(key)
        try:
            array = self._arrays[name]
        except KeyError:
            raise KeyError(unknown_name_message(name, self._arrays)) from None
        if type(array) is tuple:
            array = array[0].transpose(array[1])
            self._store(name, array)
        elif isinstance(array, _Lazy):
            array = array.compute()
            self._store(name, array)
        return array

    @property
    def passes(self) -> dict:
        """Pass name -> that pass's cache, in order, this one last (one pass: {"main": self})."""
        return {**self._earlier_passes, self._pass_name: self}

    def __iter__(self):
        return iter(self._arrays)

    def __len__(self):
        return len(self._arrays)

    def __repr__(self):
        lines = [f"  {name}: {tuple(a.shape)}" for name, a in self.items()]
        return "ActivationCache(\n" + "\n".join(lines) + "\n)"
