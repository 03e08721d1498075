"""What a forward pass computes: the one rule (forward.py's docstring explains it).

A pass knows, before it runs, what will be read from it: the loss's positions (the last
pass), the sites a later pass links to, and the whole cache when the caller asks for it.
plan_passes walks the network backwards from those reads, last pass first, and decides
for every site (every cache array) whether it is needed and at which positions:

    a site nobody reads is not computed, nor anything that only feeds it;
    a site a clamp replaces entirely (at the positions read) is not computed either: its
        value is the clamp's, and only the clamp's link source (if any) is read;
    a site a clamp replaces in part is computed, then replaced;
    positions: ALL, or LAST (the last position alone, all that a few-shot loss reads of
        the last block: its queries, patterns and outputs are computed there only).

The clamps of each site are prepared here once (masks reduced to the axes they vary
along, consecutive constant clamps merged into one mask and value), so that applying them
costs about one np.where per site per step. Plans are cached per (config, batch shape,
clamp objects, cache or not): a clamp's arrays are read when its first forward is
planned (make a new Clamp to change them).
"""
from __future__ import annotations

import functools
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from .cache import unknown_name_message
from .clamp import Clamp, Passes
from .config import ModelConfig

ALL = slice(None)            # every position
LAST = slice(-1, None)       # the last position (the few-shot query)

# internal layout -> TransformerLens layout, as a transpose
TO_TL = {
    "resid": (2, 1, 0),          # [D, T, B]       -> [B, T, D]
    "head_vec": (3, 1, 2, 0),    # [E, T, H, B]    -> [B, T, H, E]
    "pattern": (3, 2, 0, 1),     # [Tq, Tk, H, B]  -> [B, H, Tq, Tk]
    "result": (3, 2, 0, 1),      # [H, D, T, B]    -> [B, T, H, D]
}
FROM_TL = {layout: tuple(np.argsort(perm)) for layout, perm in TO_TL.items()}
# the positions axis (the query axis of a pattern): internal and TransformerLens layout
POSITION_AXIS = {"resid": 1, "head_vec": 1, "pattern": 0, "result": 2}
TL_POSITION_AXIS = {"resid": 1, "head_vec": 1, "pattern": 2, "result": 1}


# ---------------------------------------------------------------- the sites of a network


@dataclass(frozen=True)
class Site:
    """A cache array: its name, layout, and the sites its computation reads, each with
    whether it is read at the same positions (True) or at every position (False)."""

    name: str
    layout: str
    inputs: tuple = ()


@functools.lru_cache(maxsize=64)
def sites(config: ModelConfig) -> tuple:
    """Every site of this config's forward pass, in the order forward.py computes them."""
    out = [Site("hook_embed", "resid")]
    block_input = (("hook_embed", False),)       # embeddings: always at every position
    if config.positional == "learned":
        out.append(Site("hook_pos_embed", "resid"))
        block_input += (("hook_pos_embed", False),)
    for layer in range(config.n_layers):
        b = f"blocks.{layer}."
        a = b + "attn."
        out.append(Site(b + "hook_resid_pre", "resid", block_input))
        x = b + "hook_resid_pre"
        if config.layernorm:
            out.append(Site(b + "ln1.hook_normalized", "resid", ((x, True),)))
            x = b + "ln1.hook_normalized"
        q, k = a + "hook_q", a + "hook_k"
        out += [Site(q, "head_vec", ((x, True),)), Site(k, "head_vec", ((x, True),)),
                Site(a + "hook_v", "head_vec", ((x, True),))]
        if config.positional == "rope":
            out += [Site(a + "hook_rot_q", "head_vec", ((q, True),)),
                    Site(a + "hook_rot_k", "head_vec", ((k, True),))]
            q, k = a + "hook_rot_q", a + "hook_rot_k"
        if config.smeared_key:   # position j mixes in j - 1
            out.append(Site(a + "hook_smeared_k", "head_vec", ((k, False),)))
            k = a + "hook_smeared_k"
        out += [Site(a + "hook_attn_scores", "pattern", ((q, True), (k, False))),
                Site(a + "hook_pattern", "pattern", ((a + "hook_attn_scores", True),)),
                Site(a + "hook_z", "head_vec", ((a + "hook_pattern", True), (a + "hook_v", False))),
                Site(a + "hook_result", "result", ((a + "hook_z", True),)),
                Site(b + "hook_attn_out", "resid", ((a + "hook_result", True),)),
                Site(b + "hook_resid_post", "resid",
                     ((b + "hook_resid_pre", True), (b + "hook_attn_out", True)))]
        block_input = ((b + "hook_resid_post", True),)
    x = block_input[0][0]
    if config.layernorm:
        out.append(Site("ln_final.hook_normalized", "resid", ((x, True),)))
        x = "ln_final.hook_normalized"
    out.append(Site("hook_logits", "resid", ((x, True),)))
    return tuple(out)


@functools.lru_cache(maxsize=64)
def site_index(config: ModelConfig) -> dict:
    """name -> (position in the forward order, Site)."""
    return {site.name: (i, site) for i, site in enumerate(sites(config))}


@functools.lru_cache(maxsize=64)
def site_to_tl(config: ModelConfig) -> dict:
    """name -> the transpose from the site's internal layout to its TransformerLens one."""
    return {site.name: TO_TL[site.layout] for site in sites(config)}


def hook_names(config: ModelConfig) -> list[str]:
    """Every cache name this config's forward pass produces, in order."""
    return [site.name for site in sites(config)]


def tl_shape(config: ModelConfig, site: Site, n_batch: int, n_positions: int) -> tuple:
    """The site's full TransformerLens shape (every position)."""
    B, T, c = n_batch, n_positions, config
    if site.layout == "pattern":
        return (B, c.n_heads, T, T)
    if site.layout == "head_vec":
        return (B, T, c.n_heads, c.d_head)
    if site.layout == "result":
        return (B, T, c.n_heads, c.d_model)
    return (B, T, c.n_outputs if site.name == "hook_logits" else c.d_model)


def at_positions(array, positions, axis):
    """array[..., positions, ...] along `axis` (a view)."""
    if positions == ALL:
        return array
    index = [slice(None)] * array.ndim
    index[axis] = positions
    return array[tuple(index)]


def _merge(a, b):
    return b if a is None else ALL if ALL in (a, b) else a


# ---------------------------------------------------------------- clamps prepared per site


def _smallest(array) -> np.ndarray:
    """array with every axis along which it does not vary cut to length 1 (it still
    broadcasts to the same array; np.where over it costs a multiply, not a full mask)."""
    for axis in range(array.ndim):
        first = np.take(array, [0], axis=axis)
        if array.shape[axis] > 1 and np.array_equal(array, np.broadcast_to(first, array.shape)):
            array = first
    return np.ascontiguousarray(array)


@dataclass
class SiteClamps:
    """A site's clamps, ready to apply at its positions (internal layout, broadcastable).

    steps:    in order: (mask, value) with value a constant array (consecutive constant
              clamps merged) or a Clamp (a function value or a Link: resolved per batch).
    replaced: every replaced element; entire: whether that is every element.
    links:    (clamp, owned [TL, at the positions]: the elements no later clamp overwrote).
    """

    site: Site
    positions: slice
    full_shape: tuple            # TL, every position
    shape: tuple                 # internal layout, at the positions
    steps: list
    replaced: np.ndarray
    entire: bool
    links: list

    def fit(self, value_tl) -> np.ndarray:
        """A clamp value (TL, broadcastable to the full shape) at the site's positions, as
        an internal-layout view."""
        value = np.broadcast_to(value_tl, self.full_shape)
        value = at_positions(value, self.positions, TL_POSITION_AXIS[self.site.layout])
        return value.transpose(FROM_TL[self.site.layout])


def _prepare(config, site, clamps, positions, n_batch, n_positions) -> SiteClamps:
    full = tl_shape(config, site, n_batch, n_positions)
    axis = TL_POSITION_AXIS[site.layout]
    dtype = np.dtype(config.dtype)
    inverse = FROM_TL[site.layout]
    masks = [at_positions(np.broadcast_to(clamp.mask(full), full), positions, axis) for clamp in clamps]
    shape = masks[0].shape                               # TL, at the positions
    shape_internal = tuple(shape[i] for i in inverse)
    replaced = np.zeros(shape, dtype=bool)
    steps = []             # [mask TL, value TL or Clamp]
    for clamp, mask in zip(clamps, masks):
        replaced |= mask
        if clamp.is_linked or callable(clamp.value):
            steps.append([mask, clamp])
            continue
        value = at_positions(np.broadcast_to(clamp.resolve_value(None, None, full, dtype), full),
                             positions, axis)
        if steps and not isinstance(steps[-1][1], Clamp):     # merge with the constant before
            before_mask, before_value = steps[-1]
            steps[-1] = [before_mask | mask, np.where(mask, value, before_value)]
        else:
            steps.append([mask, value])
    # a linked clamp owns the elements no later clamp on this site overwrote
    links, covered = [], np.zeros(shape, dtype=bool)
    for clamp, mask in reversed(list(zip(clamps, masks))):
        if clamp.is_linked:
            links.append((clamp, mask & ~covered))
        covered |= mask
    steps = [(_smallest(mask).transpose(inverse),
              value if isinstance(value, Clamp) else _smallest(value).transpose(inverse))
             for mask, value in steps]
    return SiteClamps(site, positions, full, shape_internal, steps, _smallest(replaced).transpose(inverse),
                      bool(replaced.all()), links)


# ---------------------------------------------------------------- the plan


@dataclass
class PassPlan:
    """What one pass computes. positions: site -> the positions it is present at (computed,
    or made by its clamps); replaced: the sites its clamps make entirely (not computed);
    clamps: site -> SiteClamps; link_sources: sites a linked clamp reads (here or later);
    read_cache: the caller reads every array; n_batch: the batch size it was planned for;
    computed, stored: the sites it computes, and those its cache holds."""

    name: str
    positions: dict
    replaced: frozenset
    clamps: dict
    link_sources: frozenset
    read_cache: bool
    n_batch: int
    computed: frozenset = frozenset()     # the sites the pass computes
    stored: frozenset = frozenset()       # the sites its cache holds

    def __post_init__(self):
        self.computed = frozenset(name for name in self.positions if name not in self.replaced)
        # the cache holds what may be read from it: everything when the caller reads it or
        # a clamp's function value may (it gets the cache so far), else the links' sources.
        # (Holding every array would keep them all alive to the end of the pass: fresh
        # memory for every step instead of the hot memory of the arrays just freed.)
        reads_cache = self.read_cache or any(
            not isinstance(value, np.ndarray) and not value.is_linked and value.reads_cache
            for site_clamps in self.clamps.values() for _, value in site_clamps.steps)
        self.stored = frozenset(self.positions) if reads_cache else self.link_sources

    def computes(self, name) -> bool:
        return name in self.computed


def _source_positions(link, positions):
    """Positions of a link's source that its value needs: the clamped site's own for a
    plain link, the transform's `source_positions` if it declares them, else every one."""
    if link.transform is None:
        return positions
    return getattr(link.transform, "source_positions", ALL)


def _plan_pass(config, the_pass, reads, linked, earlier_names, n_batch, n_positions, read_cache):
    """The PassPlan of one pass; records the reads its links make of earlier passes."""
    index = site_index(config)
    by_site = {}
    for clamp in the_pass.clamps:
        if clamp.name not in index:
            raise ValueError(unknown_name_message(clamp.name, index))
        by_site.setdefault(clamp.name, []).append(clamp)
    need = dict(reads[the_pass.name])            # site -> positions read
    # a function value that reads the cache so far sees every array before its site
    reading = [index[c.name][0] for c in the_pass.clamps
               if callable(c.value) and not c.is_linked and c.reads_cache]
    if reading:
        for site in sites(config)[:max(reading)]:
            need[site.name] = ALL
    replaced, prepared = set(), {}
    for site in reversed(sites(config)):         # outputs first: a site's readers come before it
        positions = need.get(site.name)
        if positions is None:
            continue                             # nobody reads it: not computed
        clamps = by_site.get(site.name)
        if clamps:
            prepared[site.name] = site_clamps = _prepare(config, site, clamps, positions, n_batch, n_positions)
            for clamp in clamps:
                if clamp.is_linked:
                    _demand_link(config, clamp, positions, index[site.name][0], the_pass.name,
                                 need, reads, linked, earlier_names)
            if site_clamps.entire:               # made by its clamps: its inputs are not read for it
                replaced.add(site.name)
                continue
        for name, same_positions in site.inputs:
            need[name] = _merge(need.get(name), positions if same_positions else ALL)
    return PassPlan(the_pass.name, need, frozenset(replaced), prepared,
                    frozenset(linked[the_pass.name]), read_cache, n_batch)


def _demand_link(config, clamp, positions, site_position, pass_name, need, reads, linked, earlier_names):
    """Record that a linked clamp reads its source (checked to exist and come first)."""
    link = clamp.value
    index = site_index(config)
    wanted = _source_positions(link, positions)
    if link.source not in index:
        raise ValueError(unknown_name_message(link.source, index))
    if link.source_pass is None:
        if index[link.source][0] >= site_position:
            raise ValueError(f"clamp on {clamp.name} links to {link.source}, which is not "
                             f"computed before it in this pass ({pass_name!r})")
        need[link.source] = _merge(need.get(link.source), wanted)
        linked[pass_name].add(link.source)
        return
    if link.source_pass not in earlier_names:
        raise ValueError(f"clamp on {clamp.name} links to pass {link.source_pass!r}; "
                         f"passes run before: {sorted(earlier_names)}")
    source_reads = reads[link.source_pass]
    source_reads[link.source] = _merge(source_reads.get(link.source), wanted)
    linked[link.source_pass].add(link.source)


_PLANS: OrderedDict = OrderedDict()
_MAX_PLANS = 64


def plan_passes(config: ModelConfig, passes: Passes, n_batch: int, n_positions: int,
                read_cache: bool) -> list[PassPlan]:
    """The plan of every pass (in order) for a batch of n_batch sequences of n_positions.

    read_cache: the caller reads every site of every pass (run_with_cache, loss_and_grads).
    """
    shape_key = (config, n_batch, n_positions, read_cache)
    cached = _PLANS.get((id(passes),) + shape_key)     # these very passes (training's steps)
    if cached is not None and cached[0] is passes:
        return cached[1]
    # or the same clamp objects in new Passes (evaluation chunks); the cached passes keep
    # them alive, so their ids are theirs
    key = shape_key + (tuple((p.name, tuple(map(id, p.clamps))) for p in passes.passes),)
    cached = _PLANS.get(key)
    if cached is not None:
        _PLANS.move_to_end(key)
        _PLANS[(id(passes),) + shape_key] = (passes, cached[1])
        return cached[1]
    names = [p.name for p in passes.passes]
    reads = {name: {} for name in names}
    reads[names[-1]]["hook_logits"] = LAST if config.input_kind == "fewshot" else ALL
    if read_cache:
        for name in names:
            reads[name].update({site.name: ALL for site in sites(config)})
    linked = {name: set() for name in names}
    plans = {}
    for i in reversed(range(len(names))):       # the last pass first: it says what it reads of earlier ones
        plans[names[i]] = _plan_pass(config, passes.passes[i], reads, linked, names[:i], n_batch,
                                     n_positions, read_cache)
    result = [plans[name] for name in names]
    _PLANS[key] = _PLANS[(id(passes),) + shape_key] = (passes, result)
    while len(_PLANS) > _MAX_PLANS:
        _PLANS.popitem(last=False)
    return result
