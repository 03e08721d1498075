"""Singh et al.'s clamps ("artificial optogenetics") and the named conditions built from them.

Layers are 0-indexed: our layer 0 is the paper's layer 1 (previous-token heads), our
layer 1 the paper's layer 2 (induction heads). The three subcircuits of an induction
head, and the clamp that hands each one to the network ready-made:

    A  (steps 1+2) layer 0 writes each exemplar into the next (label) token's stream
       -> layer0_perfect: two passes; see below
    B  (3qk+4)     the query matches the key of the label whose exemplar matches it
       -> match(s): the layer-1 head's query row puts s on the correct label
    C  (3v+5)      the value/output path copies that label to the output
       -> copy: the query's logits are the head's scores to the two label tokens

Clamps as the paper's code does them (shared/research/singh2024.md, finding 5):
- ablate head: the head's values are 0 (hook_v), so it moves nothing.
- previous-token pattern (PT) of a layer-0 head, strength p: row i puts p on i-1 and
  1-p on itself, row 0 on itself; optionally on label rows only. Constant.
- layer-0 perfect (A): a *pattern pass* whose block-0 output (residual included) is the
  block-0 input E (the embeddings, plus the learned position embeddings where the model
  has them, as the authors' code builds it) shifted one position to the right on the
  middle positions (position i gets E[i-1] for i = 1..T-2; the first and the query keep
  their own), and a final pass whose block-0 output is E itself (layer 0 contributes
  nothing) and whose layer-1 patterns are the pattern pass's. The paper runs a third,
  plain pass only to read E; it is the same array in every pass, so here each pass links
  to its own blocks.0.hook_resid_pre. Gradients flow through both links: into the
  embeddings, and through the pattern pass's layer-1 scores into W_Q, W_K of layer 1.
- match (B) of a layer-1 head with strength s: its query row puts s on the correct label
  token, 1 - s on the other label token (C = 2; (1 - s)/(C - 1) on each other label in
  general) and 0 on exemplars and on itself, so induction strength = 2s - 1. Constant.
  Like the paper's code, s may lie outside [0, 1] (we allow [-1, 1]): the row still
  sums to 1 but is then an affine mix, not a probability distribution (s = -1 subtracts
  the correct label's value once and adds the other's twice).
- copy (C) of a layer-1 head: the query's logits become -1e9 for every label except the
  two in context, which get the head's pre-softmax query-row scores to their label
  tokens, read from a reference pass (this pass, or the pattern pass with A), with the
  gradient flowing into those scores. Only the match (B) is left to learn.

Specs: a clamp set is a list of JSON-able dicts, e.g.
    [{"kind": "A"}, {"kind": "copy", "layer": 1, "head": 3}]
    [{"kind": "only_head", "layer": 1, "head": 3}, {"kind": "match", "layer": 1, "head": 3, "s": 1.0}]
build_clamps(specs, config) turns it into Passes that remember the spec (a run records
it as its clamps' identity). parse_clamp_option reads the command line's small grammar.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .clamp import Clamp, Link, Pass, Passes, batch_positions, previous_token_pattern, zero_ablate_head
from .config import ModelConfig
from .plan import LAST

MASKED_LOGIT = -1e9      # the paper's value for labels not in context

CONDITIONS = ("none", "PT", "A", "B", "C", "A+C")
# Fig. 6 names: which subcircuits are left to evolve
DATA_CONDITIONS = {"unclamped": "none", "B_evolves": "A+C", "C_evolves": "B", "BC_evolve": "A"}
KINDS = ("A", "match", "copy", "prev_token", "ablate", "only_head")


# ---------------------------------------------------------------- transforms for links


def shift_middle_index(n_positions: int) -> np.ndarray:
    """[T] source position of every position: i - 1 for i = 1..T-2; 0 and T-1 keep their own."""
    index = np.arange(n_positions)
    index[1:n_positions - 1] -= 1
    return index


def shift_middle_forward(x):
    """x [B, T, ...] -> y [B, T, ...] with y[:, i] = x[:, i - 1] for i = 1..T-2, and the
    first and last (query) positions unchanged: layer-0 perfect's "previous tokens"."""
    return np.take(x, shift_middle_index(x.shape[1]), axis=1)


def shift_middle_backward(d_y):
    """d_y [B, T, ...] -> d_x [B, T, ...]: each position's gradient goes back to the
    position it was copied from; x[:, 0] feeds both y[:, 0] and y[:, 1], so it sums two."""
    n_positions = d_y.shape[1]
    if n_positions <= 2:                       # no middle positions: y = x
        return np.array(d_y)
    d_x = np.zeros_like(d_y)
    # y[:, 0] = x[:, 0];  y[:, i] = x[:, i - 1] for i = 1..T-2;  y[:, T-1] = x[:, T-1]
    d_x[:, 0] = d_y[:, 0]
    d_x[:, :n_positions - 2] += d_y[:, 1:n_positions - 1]
    d_x[:, n_positions - 1] = d_y[:, n_positions - 1]
    return d_x


@dataclass(frozen=True)
class ShiftMiddle:
    """Link transform for A: shift_middle_forward / shift_middle_backward along positions."""

    def forward(self, source, batch):
        return shift_middle_forward(source)

    def backward(self, d_value, batch, source_shape):
        return shift_middle_backward(np.broadcast_to(d_value, source_shape))

    def __str__(self):
        return "shift middle positions right by one"


@dataclass(frozen=True)
class ScoresToLabelLogits:
    """Query-row scores of one head to the label tokens -> the query's label logits.

    source: attention scores [B, H, Tq, Tk]; value: logits [B, T, V], every entry
    MASKED_LOGIT except value[b, -1, labels[b, c]] = scores[b, head, -1, 2c + 1].
    """

    head: int
    n_outputs: int
    # it reads the query row only: a pass that lends the scores computes just that row
    source_positions = LAST

    def _where(self, batch):
        labels = np.asarray(batch.labels)                              # [B, C]
        rows = np.arange(labels.shape[0])[:, None]                     # [B, 1]
        label_keys = 2 * np.arange(labels.shape[1]) + 1                # [C]
        return rows, labels, label_keys

    def forward(self, scores, batch):
        n_batch, _, n_positions, _ = scores.shape
        rows, labels, label_keys = self._where(batch)
        value = np.full((n_batch, n_positions, self.n_outputs), MASKED_LOGIT, dtype=scores.dtype)
        value[rows, -1, labels] = scores[:, self.head, -1, label_keys]   # [B, C]
        return value

    def backward(self, d_value, batch, source_shape):
        d_scores = np.zeros(source_shape, dtype=d_value.dtype)
        rows, labels, label_keys = self._where(batch)
        d_value = np.broadcast_to(d_value, (source_shape[0], source_shape[2], self.n_outputs))
        d_scores[:, self.head, -1, label_keys] = d_value[rows, -1, labels]
        return d_scores

    def __str__(self):
        return f"scores of head {self.head} to the label tokens"


# ---------------------------------------------------------------- single clamps


def _check_head(config: ModelConfig, layer, head, what):
    for name, value, n in (("layer", layer, config.n_layers), ("head", head, config.n_heads)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value < n:
            raise ValueError(f"{what}: {name} = {value!r} is out of range; allowed 0..{n - 1}")
    return int(layer), int(head)


def ablate_heads(config: ModelConfig, layer: int, heads) -> list[Clamp]:
    """The paper's ablation: the values of `heads` of `layer` are zero."""
    heads = list(heads)
    for head in heads:
        _check_head(config, layer, head, "ablate")
    return [zero_ablate_head(layer, head, "v") for head in heads]


def only_head(config: ModelConfig, layer: int, head: int) -> list[Clamp]:
    """Ablate (values = 0) every head of `layer` except `head`."""
    layer, head = _check_head(config, layer, head, "only_head")
    return ablate_heads(config, layer, [h for h in range(config.n_heads) if h != head])


def match_target(batch, s: float, n_positions: int) -> np.ndarray:
    """The match clamp's query row [B, 1, 1, Tk]: s on the correct label, the rest of
    1 - s shared by the other labels, 0 on exemplars and on the query itself."""
    query_pair = np.asarray(batch.query_pair)                          # [B]
    n_pairs = (n_positions - 1) // 2
    row = np.zeros((len(query_pair), 1, 1, n_positions))
    row[:, 0, 0, 1:n_positions - 1:2] = (1.0 - s) / max(n_pairs - 1, 1)
    row[np.arange(len(query_pair)), 0, 0, 2 * query_pair + 1] = s
    return row


def match(config: ModelConfig, layer: int, head: int, s: float = 1.0) -> Clamp:
    """B: the query row of `head` attends with s to the correct label (constant)."""
    layer, head = _check_head(config, layer, head, "match")
    if isinstance(s, bool) or not isinstance(s, numbers.Real) or not -1.0 <= s <= 1.0:
        raise ValueError(f"match: s = {s!r}; must be a number in [-1, 1]")
    s = float(s)

    def value(batch, cache):
        return match_target(batch, s, batch_positions(batch))

    return Clamp(f"blocks.{layer}.attn.hook_pattern", value, np.s_[:, head, -1, :],
                 label=f"match L{layer}H{head} s={s:g}", reads_cache=False)


def copy(config: ModelConfig, layer: int, head: int, source_pass: str | None = None) -> Clamp:
    """C: the query's label logits are `head`'s scores to the label tokens (linked)."""
    layer, head = _check_head(config, layer, head, "copy")
    if config.input_kind != "fewshot":
        raise ValueError("copy: needs a few-shot model (label logits at the query)")
    link = Link(f"blocks.{layer}.attn.hook_attn_scores", source_pass,
                ScoresToLabelLogits(head, config.n_outputs))
    return Clamp("hook_logits", link, np.s_[:, -1, :],
                 label=f"copy from L{layer}H{head} scores" + (f" ({source_pass} pass)" if source_pass else ""))


def layer0_perfect_passes(config: ModelConfig) -> tuple[list[Clamp], list[Clamp]]:
    """A: (clamps of the pattern pass, clamps of the final pass); see the module docstring."""
    if config.n_layers != 2:
        raise ValueError(f"layer-0 perfect (A) needs a 2-layer model; n_layers = {config.n_layers}")
    # block 0's input: the embeddings, plus learned positions where the model has them
    block0_in, block0_out = "blocks.0.hook_resid_pre", "blocks.0.hook_resid_post"
    pattern_pass = [Clamp(block0_out, Link(block0_in, None, ShiftMiddle()),
                          label="A: block 0 output = its input shifted one position")]
    final_pass = [Clamp(block0_out, Link(block0_in), label="A: block 0 output = its input"),
                  Clamp("blocks.1.attn.hook_pattern", Link("blocks.1.attn.hook_pattern", "pattern"),
                        label="A: layer-1 patterns from the pattern pass")]
    return pattern_pass, final_pass


# ---------------------------------------------------------------- specs


_FIELDS = {   # kind -> {field: (type, default)}; layer defaults follow the paper's roles
    "A": {},
    "match": {"layer": (int, 1), "head": (int, None), "s": (float, 1.0)},
    "copy": {"layer": (int, 1), "head": (int, None)},
    "prev_token": {"layer": (int, 0), "head": (int, None), "p": (float, 1.0),
                   "label_rows_only": (bool, False)},
    "ablate": {"layer": (int, 1), "head": (int, None)},
    "only_head": {"layer": (int, 1), "head": (int, None)},
}


def normalise_spec(spec) -> dict:
    """A clamp spec with its kind checked, defaults filled in and values typed."""
    if not isinstance(spec, dict) or "kind" not in spec:
        raise ValueError(f"clamp spec {spec!r}: must be a dict with a 'kind' ({', '.join(KINDS)})")
    kind = spec["kind"]
    if kind not in _FIELDS:
        raise ValueError(f"clamp kind {kind!r} is unknown; choices: {', '.join(KINDS)}")
    fields = _FIELDS[kind]
    unknown = sorted(set(spec) - set(fields) - {"kind"})
    if unknown:
        raise ValueError(f"clamp {kind}: unknown fields {unknown}; allowed: {sorted(fields) or 'none'}")
    out = {"kind": kind}
    for name, (kind_type, default) in fields.items():
        value = spec.get(name, default)
        if value is None:
            raise ValueError(f"clamp {kind}: needs {name}=..., e.g. {kind}:{name}=3")
        try:
            if kind_type is bool:
                if isinstance(value, str):
                    if value.lower() not in ("0", "1", "true", "false"):
                        raise ValueError
                    value = value.lower() in ("1", "true")
                value = bool(value)
            elif kind_type is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                value = int(value)
            else:
                value = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"clamp {kind}: {name} = {value!r} is not a valid "
                             f"{kind_type.__name__}") from None
        out[name] = value
    return out


def parse_clamp_option(text: str) -> dict:
    """The command line's grammar: KIND or KIND:field=value,field=value.

    A | match:head=3,s=0.8 | copy:head=3 | prev_token:head=2,p=1,label_rows_only=1 |
    ablate:layer=1,head=5 | only_head:layer=1,head=3 (layer defaults: 0 for prev_token,
    1 otherwise).
    """
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"--clamp {text!r}: expected KIND or KIND:field=value,...; kinds: "
                         f"{', '.join(KINDS)}")
    kind, _, rest = text.strip().partition(":")
    spec = {"kind": kind}
    for item in filter(None, rest.split(",")):
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise ValueError(f"--clamp {text!r}: {item!r} is not field=value")
        if name.strip() in spec:
            raise ValueError(f"--clamp {text!r}: {name.strip()} is given twice")
        spec[name.strip()] = value.strip()
    return normalise_spec(spec)


def parse_only_head_option(text: str) -> dict:
    """--only-head LAYER:HEAD -> an only_head spec."""
    layer, colon, head = str(text).partition(":")
    if not colon:
        raise ValueError(f"--only-head {text!r}: expected LAYER:HEAD, e.g. 1:3")
    return normalise_spec({"kind": "only_head", "layer": layer, "head": head})


def build_clamps(specs, config: ModelConfig) -> Passes:
    """Passes for a list of clamp specs (see the module docstring); remembers the specs.

    With A the forward has a "pattern" pass and a "main" pass, and copy reads its scores
    from the pattern pass; otherwise one "main" pass.
    """
    specs = [normalise_spec(spec) for spec in specs]
    kinds = [spec["kind"] for spec in specs]
    if kinds.count("A") > 1 or kinds.count("copy") > 1:
        raise ValueError(f"clamps {kinds}: A and copy can each be given once")
    layers = [spec["layer"] for spec in specs if spec["kind"] == "only_head"]
    repeated = sorted({layer for layer in layers if layers.count(layer) > 1})
    if repeated:
        raise ValueError(f"only_head (--only-head) is given more than once for layer {repeated[0]}: "
                         "each keeps one head of the layer and ablates the others, so together "
                         "they would ablate every head; give one per layer")
    with_a = "A" in kinds
    pattern_clamps, main_links, main_constants = [], [], []
    if with_a:
        pattern_clamps, main_links = layer0_perfect_passes(config)
    for spec in specs:
        kind = spec["kind"]
        if kind == "copy":
            main_links.append(copy(config, spec["layer"], spec["head"], "pattern" if with_a else None))
        elif kind == "match":
            main_constants.append(match(config, spec["layer"], spec["head"], spec["s"]))
        elif kind == "prev_token":
            layer, head = _check_head(config, spec["layer"], spec["head"], "prev_token")
            main_constants.append(previous_token_pattern(layer, head, spec["p"],
                                                         spec["label_rows_only"]))
        elif kind == "ablate":
            main_constants += ablate_heads(config, spec["layer"], [spec["head"]])
        elif kind == "only_head":
            main_constants += only_head(config, spec["layer"], spec["head"])
    # constants after links: a match on a row the A link also writes must win there
    main = Pass("main", tuple(main_links + main_constants))
    passes = (Pass("pattern", tuple(pattern_clamps)), main) if with_a else (main,)
    return Passes(passes, spec=specs)


def condition_specs(name: str, induction_head: int, previous_token_head: int | None = None,
                    s: float = 1.0) -> list[dict]:
    """The clamp specs of one of Singh et al.'s named conditions (Fig. 5b, Fig. 6).

    Fig. 5b setup: only `induction_head` of layer 1 is active (the others' values are
    ablated) in every condition except those with copy, which need no ablation.
    none | PT (previous-token pattern on layer-0 head previous_token_head) | A | B
    (match, strength s) | C (copy) | A+C; also Fig. 6's names unclamped, B_evolves,
    C_evolves, BC_evolve.
    """
    name = DATA_CONDITIONS.get(name, name)
    if name not in CONDITIONS:
        raise ValueError(f"condition {name!r} is unknown; choices: "
                         f"{', '.join(CONDITIONS + tuple(DATA_CONDITIONS))}")
    alone = [{"kind": "only_head", "layer": 1, "head": induction_head}]
    if name == "none":
        return alone
    if name == "PT":
        if previous_token_head is None:
            raise ValueError("condition PT needs previous_token_head")
        return alone + [{"kind": "prev_token", "layer": 0, "head": previous_token_head, "p": 1.0}]
    if name == "A":
        return [{"kind": "A"}] + alone
    if name == "B":
        return alone + [{"kind": "match", "layer": 1, "head": induction_head, "s": s}]
    if name == "C":
        return [{"kind": "copy", "layer": 1, "head": induction_head}]
    return [{"kind": "A"}, {"kind": "copy", "layer": 1, "head": induction_head}]
