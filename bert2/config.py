"""All bert2 settings in one place: dataclasses, presets, TOML load/save, overrides and validation.

Every field carries a one-line docstring (the string literal right after it); the CLI's `config show`, the
TUI's config form and `validate()` messages all read those strings, so the help text lives next to the value.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import inspect
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, get_type_hints

import tomli_w

from .errors import Bert2Error
from .registry import FINETUNE_TASKS

DEFAULT_CONFIG_FILE = "bert2.toml"

TRAINING_SECTIONS = ("pretrain", "finetune", "distill")
"""The sections that are a TrainConfig: every training setting exists once, with each section's own defaults."""

CHOICES: dict[str, tuple[str, ...]] = {
    "model.hidden_act": ("gelu", "gelu_tanh", "relu"),
    "model.attn_implementation": ("sdpa", "eager"),
    "model.norm_placement": ("post", "pre"),
    "model.feed_forward": ("mlp", "glu"),
    "model.position_init": ("normal", "sinusoidal"),
    "model.position_embedding_type": ("alibi", "absolute"),
    **{f"{s}.scheduler": ("linear", "cosine", "constant") for s in TRAINING_SECTIONS},
    **{f"{s}.on_nan": ("stop", "rollback") for s in TRAINING_SECTIONS},
    "runtime.precision": ("fp32", "bf16", "fp16", "auto"),
    "finetune.task": FINETUNE_TASKS,
    "finetune.pooling": ("mean", "cls"),
    "finetune.truncation": ("head+tail", "head"),
    "distill.student_init": ("teacher", "random"),
}
"""Fields with a closed set of values: validate() checks them, the CLI and the TUI's Config screen offer them."""

REPORTERS: tuple[str, ...] = ("csv", "tensorboard")
"""What `report_to` may name besides `none` (comma-separated): training/reporters.py writes them."""


def report_names(value: str) -> tuple[list[str], list[str]]:
    """`report_to` ("none", "csv", "csv,tensorboard") -> (known names in order, unknown names)."""
    names = [n.strip() for n in str(value).split(",") if n.strip() and n.strip() != "none"]
    names = list(dict.fromkeys(names))
    return [n for n in names if n in REPORTERS], [n for n in names if n not in REPORTERS]


class ConfigError(Bert2Error, ValueError):
    """Raised for an invalid configuration; carries every field error found, not just the first."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


@dataclass(frozen=True)
class FieldError:
    """One problem with one field, phrased for the user: which key, what is wrong, what is allowed."""

    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


# --------------------------------------------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------------------------------------------


@dataclass
class ModelConfig:
    vocab_size: int = 8192
    """Vocabulary size; a trained WordPiece tokenizer gets this many tokens, a loaded one must match."""
    hidden_size: int = 128
    """Width H of every token vector (BERT-Tiny: 128, BERT-Base: 768)."""
    num_hidden_layers: int = 2
    """Number of Transformer encoder layers."""
    num_attention_heads: int = 8
    """Attention heads per layer; hidden_size must be divisible by it."""
    intermediate_size: int = 512
    """Width of the feed-forward layer inside each encoder layer (usually 4 x hidden_size)."""
    hidden_act: str = "gelu"
    """Feed-forward activation: gelu (exact, as BERT), gelu_tanh or relu."""
    hidden_dropout_prob: float = 0.0
    """Dropout on embeddings and residual branches; 0 for pretraining (short budgets do not overfit; 12% of a step)."""
    attention_probs_dropout_prob: float = 0.0
    """Dropout on attention probabilities; 0 by default because on CPU it costs a quarter of a step."""
    max_position_embeddings: int = 512
    """Size of the learned position table: the longest sequence the model can ever read."""
    type_vocab_size: int = 2
    """Number of segment (token type) ids: 2 for sentence A / sentence B."""
    layer_norm_eps: float = 1e-12
    """Epsilon inside every LayerNorm (BERT uses 1e-12)."""
    initializer_range: float = 0.02
    """Standard deviation of the normal initialisation of weights."""
    pad_token_id: int = 0
    """Id of [PAD]; its embedding row is zero and it is never attended to."""
    attn_implementation: str = "sdpa"
    """sdpa (fast, fused) or eager (slower, returns attention maps for the attention view)."""
    position_init: str = "normal"
    """Initial position table: normal (N(0, initializer_range), as BERT) or sinusoidal (Transformer sines, same std)."""
    feed_forward: str = "mlp"
    """mlp (H -> I -> H, as BERT) or glu (the activation of one H -> I projection gates a second one: Shazeer 2020; I x 2/3 keeps the size)."""
    norm_placement: str = "post"
    """post (LayerNorm after each residual, as BERT and transformers) or pre (before each sublayer, plus a final one)."""
    position_embedding_type: str = "alibi"
    """alibi (position table + ALiBi distance bias in attention; learns far faster on a CPU; exports load with trust_remote_code) or absolute (BERT)."""
    pruned_heads: dict[str, list[int]] = field(default_factory=dict)
    """Attention heads removed by `bert2 prune`, per layer by original index ({"0": [1, 5]}: layer 0 lost heads 1 and 5); each layer keeps at least one. Empty: none."""


def normalize_pruned_heads(value: Any) -> dict[str, list[int]]:
    """`pruned_heads` in its one canonical form: layer keys as decimal strings (JSON and TOML keys are strings;
    transformers' historical config.json wrote {"0": [1, 5]} too), heads sorted without repeats, layers without
    heads dropped. Accepts int or string keys and any sequence of ints; ValueError naming what is wrong."""
    if not isinstance(value, dict):
        raise ValueError(
            f'must be a table of layer -> list of head indices, e.g. {{"0": [1, 5]}}; got {type(value).__name__}'
        )
    out: dict[int, list[int]] = {}
    for key, heads in value.items():
        text = str(key).strip()
        if isinstance(key, bool) or not (isinstance(key, int) or text.isdigit()):
            raise ValueError(f"layer {key!r} is not a layer index (0, 1, ...)")
        if isinstance(heads, (str, bytes, dict)) or not hasattr(heads, "__iter__"):
            raise ValueError(f"layer {key}: must be a list of head indices, got {heads!r}")
        heads = list(heads)
        if any(isinstance(h, bool) or not isinstance(h, int) or h < 0 for h in heads):
            raise ValueError(f"layer {key}: head indices must be integers >= 0, got {heads!r}")
        if heads:
            out[int(text)] = sorted(set(out.get(int(text), [])) | set(heads))
    return {str(layer): out[layer] for layer in sorted(out)}


def pruned_heads_problems(pruned: dict[str, list[int]], num_layers: int, num_heads: int) -> list[str]:
    """What makes a (normalised) `pruned_heads` impossible for a model of this shape: a layer or head that does
    not exist, or a layer left without heads (a layer with no attention heads has no attention at all; bert2
    keeps at least one, as the pruning procedure does)."""
    problems = []
    for key, heads in pruned.items():
        layer = int(key)
        if layer >= num_layers:
            problems.append(f"layer {layer} does not exist (the model has layers 0-{num_layers - 1})")
            continue
        bad = [h for h in heads if h >= num_heads]
        if bad:
            problems.append(f"layer {layer}: head {bad[0]} does not exist (heads are 0-{num_heads - 1})")
        elif len(heads) >= num_heads:
            problems.append(f"layer {layer} would lose all {num_heads} of its heads; keep at least one per layer")
    return problems


@dataclass
class DataConfig:
    corpus: str = "wiki-offline"
    """Pretraining text: wiki-offline, imdb-offline (IMDB training reviews), both joined with +, a hub name, a .txt/.jsonl/.parquet file (text ones may be .gz/.bz2/.zst), or a directory or glob of such shards."""
    tokenizer: str = ""
    """Empty: train a WordPiece vocabulary on the corpus. Otherwise a tokenizer directory or hub name (bert-base-uncased)."""
    lowercase: bool = True
    """Lowercase text and strip accents when training a tokenizer (as bert-base-uncased)."""
    max_seq_length: int = 128
    """Longest input in tokens, [CLS] and [SEP] included; must not exceed model.max_position_embeddings."""
    mlm_probability: float = 0.2
    """Share of non-special tokens selected for masked-language-model prediction (BERT: 0.15; 0.2 learned more in a 10-minute CPU run, docs/performance.md)."""
    eval_mlm_probability: float = 0.15
    """Share masked in the held-out evaluation: BERT's 15%, so runs trained at another rate score on one test; 0: the training rate."""
    mask_replace_prob: float = 0.8
    """Of the selected tokens, the share replaced by [MASK]."""
    random_replace_prob: float = 0.1
    """Of the selected tokens, the share replaced by a random token (the rest stay unchanged)."""
    nsp: bool = True
    """Build sentence pairs and train next-sentence prediction; off: single segments, MLM only."""
    short_seq_prob: float = 0.1
    """Probability of a shorter target length for a pair, so the model also sees short inputs (google-research/bert)."""
    dupe_factor: int = 0
    """Copies of the training pairs, each with its own cut points and next-sentence partners (google-research/bert's dupe_factor); 0: enough copies for 75,000 distinct pairs (at most 10), 1 for a large corpus."""
    max_documents: int = 0
    """Use at most this many documents of the corpus (0: all)."""
    validation_fraction: float = 0.05
    """Share of documents held out for validation (whole documents, chosen by a hash of their number: deterministic)."""
    seed: int = 42
    """Seed for the split, pair building and masking."""
    streaming: bool = False
    """Stream a hub corpus instead of downloading it first (for datasets larger than the disk; needs the network)."""
    cache_dir: str = ".bert2_cache"
    """Where tokenised data and trained tokenizers are cached, so a second run does not tokenise again."""


@dataclass
class TrainConfig:
    """The settings every training run has: optimizer, schedule, length, evaluation, checkpoints, logging.

    [pretrain], [finetune] and [distill] are this one class with their own defaults (the subclasses below only
    change defaults, and add what is theirs alone), so the trainer reads one kind of object whatever runs.
    """

    batch_size: int = 32
    """Examples per optimizer step (per process, before gradient accumulation)."""
    grad_accum_steps: int = 1
    """Micro-batches accumulated into one optimizer step (a large effective batch on a small machine)."""
    learning_rate: float = 1e-3
    """Peak learning rate of AdamW after warm-up."""
    weight_decay: float = 0.01
    """AdamW weight decay (never applied to biases and LayerNorm weights)."""
    adam_beta1: float = 0.9
    """AdamW beta1."""
    adam_beta2: float = 0.98
    """AdamW beta2 (0.98: steadier than BERT's 0.999 with the large learning rates small models use)."""
    adam_epsilon: float = 1e-6
    """AdamW epsilon."""
    warmup_steps: int = 100
    """Steps of linear warm-up from 0 to learning_rate."""
    scheduler: str = "linear"
    """Decay after warm-up: linear, cosine or constant."""
    max_steps: int = 1000
    """Optimizer steps to train for (the schedule decays to 0 at this step)."""
    minutes: float = 0.0
    """Wall-clock budget in minutes (0: off); when set, the schedule is defined over the budget."""
    max_grad_norm: float = 1.0
    """Clip the global gradient norm to this value (0: no clipping)."""
    eval_every: int = 200
    """Evaluate on the validation split every N steps (0: only at the end)."""
    eval_batches: int = 0
    """Validation batches per evaluation (0: the whole split)."""
    save_every: int = 500
    """Write a checkpoint every N steps (0: only at the end)."""
    keep_last: int = 3
    """Checkpoints of this run kept in the checkpoint/ directory; older ones of the same run are deleted (best/ and final/ never are, nor another run's)."""
    log_every: int = 10
    """Emit a step event every N steps."""
    seed: int = 42
    """Seed for initialisation, data order and dropout."""
    on_nan: str = "stop"
    """What a non-finite loss does: stop, or rollback to the last checkpoint and skip the batch."""
    group_by_length: bool = True
    """Batch examples of similar length together (less padding, ~1.25x tokens/s on wiki-offline)."""
    report_to: str = "none"
    """Where the numbers go besides metrics.jsonl: none, csv (metrics.csv beside it, one row per number), tensorboard (runs/<start time>/; pip install tensorboard) or csv,tensorboard."""
    compile: bool = False
    """torch.compile the training step (opt-in: on a 2-core CPU the first step took 28 s to compile and later ones were ~4% faster for BERT-Tiny; docs/performance.md). Falls back to eager with a message if compiling fails."""


@dataclass
class PretrainConfig(TrainConfig):
    learning_rate: float = 2e-3
    """Peak learning rate of AdamW after warm-up (2e-3 learnt fastest for BERT-Tiny in 3-minute trials)."""
    max_steps: int = 2000
    """Optimizer steps to train for (the schedule decays to 0 at this step)."""
    eval_batches: int = 20
    """Validation batches per evaluation (0: the whole split)."""
    microscope: bool = True
    """At every evaluation, score each attention head's type on 8 held-out sequences (the Train screen's heads view, docs/watching-bert-learn.md); false to measure what it costs."""


@dataclass
class FinetuneConfig(TrainConfig):
    task: str = "classify"
    """classify, ner (named entities, one BIO tag per word), qa (generative: encoder + Transformer decoder) or qa-span (extractive)."""
    data: str = "imdb-offline"
    """Task data: a built-in name (imdb-offline, wiki-topic for classify; wnut16-offline for ner; wiki-qa; wiki-span), a hub name or a local file."""
    from_checkpoint: str = ""
    """Pretraining checkpoint to start from (empty: pretrain best, else final)."""
    max_seq_length: int = 0
    """Longest training input in tokens; 0: chosen from the data (what 90% of its texts fit, 64-256: attention cost grows with the square; IMDB reviews get 256)."""
    eval_max_seq_length: int = 512
    """Longest input at evaluation and inference, up to the model's positions; ALiBi models read longer texts than they trained on (0: as max_seq_length)."""
    truncation: str = "head+tail"
    """How a long text is cut for classification: head+tail (its first quarter and its end, Sun et al. 2019) or head."""
    pooling: str = "mean"
    """Sentence vector of a classifier: mean (average of the last hidden states) or cls (BERT's pooled [CLS]; exportable)."""
    learning_rate: float = 0.0
    """Peak learning rate after warm-up; 0: the task's measured recipe (generative qa 2e-3, the other tasks 1e-3; docs/quality.md). A 1.5M-parameter model wants far more than BERT-Base's 2e-5."""
    adam_beta2: float = 0.999
    """AdamW beta2 (BERT's fine-tuning value; pretraining uses 0.98, steadier with large learning rates)."""
    warmup_steps: int = 0
    """Linear warm-up steps; 0: warmup_ratio of the run."""
    warmup_ratio: float = 0.1
    """Share of the run spent warming up when warmup_steps is 0."""
    max_steps: int = 0
    """Optimizer steps to fine-tune for; 0: from finetune.epochs, or from the data's size (tasks/recipe.py)."""
    epochs: float = 0.0
    """Passes over the training data when max_steps is 0; 0: chosen from the data's size (about 27,000 examples seen, 1-10 epochs)."""
    eval_every: int = 280
    """Evaluate every N steps (0: only at the end)."""
    save_every: int = 280
    """Write a checkpoint every N steps (0: only at the end)."""
    max_examples: int = 0
    """Use at most this many training examples (0: all)."""
    hidden_dropout_prob: float = 0.0
    """Dropout inside the encoder while fine-tuning; 0: within one epoch it cost more (21% of a step) than it saved."""
    classifier_dropout: float = 0.1
    """Dropout before the classification layer."""
    decoder_layers: int = 2
    """Transformer decoder layers of the generative QA head."""
    max_answer_length: int = 32
    """Longest generated (qa) or extracted (qa-span, in tokens) answer."""
    num_beams: int = 4
    """Beam width for generative QA at inference (1: greedy)."""
    decoder_from_encoder: bool = False
    """Generative QA's decoder layers start from the encoder's (Rothe et al. 2020); measured no better here (README)."""
    copy_mechanism: bool = True
    """Generative QA may copy words of the context into its answer (a pointer-generator; See et al. 2017)."""
    no_repeat_ngram_size: int = 2
    """Generative QA never repeats an n-gram of this size in one answer (0: off); stops 'american american ...'."""
    max_word_repeats: int = 1
    """Generative QA says no word more often than this in one answer (0: off; 1 scored best on held-out answers, README)."""
    doc_stride: int = 64
    """Overlap in tokens between windows of a long context (qa-span)."""
    lookup_feature: str = "off"
    """NER (off by default: trial N5 of docs/quality.md measured no gain, 0.286 vs 0.280 entity F1): what the training set's word -> tag lookup table says of each word (unseen, O, B-X, I-X) is a learned vector added to its pieces' embeddings; out of fold for training sentences, the whole table (saved as lookup.json) at evaluation and inference. auto: on when entity words recur across the training sentences (tasks/ner.py lookup_decision); on; off. Not exportable to transformers."""
    case_features: bool = True
    """NER: each word's letter case (lower, Capitalised, ALL CAPS, ...) is a learned vector added to its pieces' embeddings, when the vocabulary lowercases (it drops the capitals that mark most names); not exportable to transformers."""


@dataclass
class DistillConfig(TrainConfig):
    teacher: str = ""
    """Checkpoint the student learns from: a pretraining one (masked-word distributions) or a classify one (label distributions)."""
    data: str = ""
    """Training data; empty: the teacher's own (the corpus it was pretrained on, or the task data its config.json names)."""
    student_layers: int = 0
    """Encoder layers of the student (0: half the teacher's, at least 1)."""
    student_hidden_size: int = 0
    """Width H of the student (0: the teacher's; another width starts the embeddings and layers at random)."""
    student_heads: int = 0
    """Attention heads of the student (0: the teacher's)."""
    student_intermediate_size: int = 0
    """Feed-forward width of the student (0: the teacher's, scaled with the width)."""
    student_init: str = "teacher"
    """teacher (copy the embeddings, heads and every other layer where shapes agree, as DistilBERT) or random."""
    temperature: float = 2.0
    """T: both output distributions are softened by T before they are compared, and the soft loss is scaled by T^2 (Hinton et al.)."""
    alpha: float = 0.5
    """Weight of the soft-target loss; the hard-label loss gets 1 - alpha (0: the outputs learn from the labels alone)."""
    hidden_weight: float = 1.0
    """Weight of hidden-state matching: MSE between mapped layers, through a learned projection when widths differ (pretraining teachers)."""
    attention_weight: float = 0.0
    """Weight of attention matching: KL between mapped layers' attention maps; needs equal head counts (pretraining teachers; slower eager attention)."""
    learning_rate: float = 2e-3
    """Peak learning rate after warm-up (pretraining's tuned value for BERT-Tiny; the student is no less tiny)."""
    warmup_steps: int = 10
    """Linear warm-up steps (few: a student copied from its teacher starts far from random, and a minutes budget on a CPU is only ~100 steps)."""
    eval_every: int = 250
    """Evaluate the student every N steps (0: only at the end, as the teacher is measured)."""
    seed: int = 42
    """Seed for the student's new weights, data order and masking."""
    max_examples: int = 0
    """Use at most this many training examples of a classify teacher's task data (0: all)."""


@dataclass
class RuntimeConfig:
    """Where and how any run computes (training, evaluation, pruning): the machine, not the recipe."""

    device: str = "auto"
    """auto (cuda > mps > cpu), cpu, cuda, cuda:N or mps."""
    num_threads: int = 0
    """CPU threads for torch (0: torch's default)."""
    precision: str = "auto"
    """auto (bf16 on a GPU or CPU with bf16 arithmetic for models >= 128 wide, else fp32; the run says which), fp32, bf16 (the big matmuls in bf16, weights and loss fp32), fp16 (GPU only, with a gradient scaler)."""


@dataclass
class PathsConfig:
    root: str = "saved_model"
    """Root of the six checkpoint directories (transformer/pretrain/... and bert/finetuning/...)."""


STAGES = ("checkpoint", "best", "final")
KINDS = {"pretrain": ("transformer", "pretrain"), "finetune": ("bert", "finetuning")}


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    distill: DistillConfig = field(default_factory=DistillConfig)
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    paths: PathsConfig = field(default_factory=PathsConfig)

    def __post_init__(self) -> None:
        self.notes: list[str] = []
        """What reading the configuration had to say that is not an error (a key that moved); not a setting."""

    # ---- the six directories -------------------------------------------------------------------------------
    def stage_dir(self, kind: str, stage: str, create: bool = True) -> Path:
        """Directory for `kind` (pretrain|finetune) and `stage` (checkpoint|best|final); created on first use."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
        if stage not in STAGES:
            raise ValueError(f"stage must be one of {list(STAGES)}, got {stage!r}")
        path = Path(self.paths.root).joinpath(*KINDS[kind], stage)
        if create:
            path.mkdir(parents=True, exist_ok=True)
        return path

    def all_stage_dirs(self, create: bool = True) -> dict[tuple[str, str], Path]:
        return {(k, s): self.stage_dir(k, s, create) for k in KINDS for s in STAGES}

    # ---- (de)serialisation ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, dict[str, Any]]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], strict: bool = True) -> Config:
        """Build a config from nested dicts; with strict, unknown sections/keys and wrong types raise ConfigError."""
        cfg = cls()
        errors = _merge_into(cfg, data)
        if strict:
            errors += cfg.validate()
            if errors:
                raise ConfigError(errors)
        return cfg

    def copy(self) -> Config:
        out = Config.from_dict(self.to_dict(), strict=False)
        out.notes = list(self.notes)
        return out

    def to_toml(self) -> str:
        """TOML with each field's one-line help as a comment above it (what `bert2 config show` prints)."""
        lines = ["# bert2 configuration: `bert2 --config FILE ...`, or ./bert2.toml found automatically.", ""]
        for section, cls in SECTIONS.items():
            docs = field_docs(cls)
            lines.append(f"[{section}]")
            for f in section_fields(cls):
                key, value = f.name, getattr(getattr(self, section), f.name)
                if docs.get(key):
                    lines.append(f"# {docs[key]}")
                if isinstance(value, dict):  # pruned_heads: inline, since a [table] header would end [model]
                    items = ", ".join(f'"{k}" = [{", ".join(map(str, v))}]' for k, v in value.items())
                    lines.append(f"{key} = {{{(' ' + items + ' ') if items else ''}}}")
                    continue
                lines.append(tomli_w.dumps({key: value}).rstrip("\n"))
            lines.append("")
        return "\n".join(lines)

    def save(self, path: str | os.PathLike) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_toml(), encoding="utf-8")
        tmp.replace(path)
        return path

    def with_overrides(self, overrides: list[str]) -> Config:
        """Apply `section.key=value` strings; values parse as TOML/Python literals, else stay strings."""
        data = self.to_dict()
        errors: list[FieldError] = []
        for item in overrides:
            if "=" not in item:
                errors.append(FieldError(item, "override must look like section.key=value"))
                continue
            key, raw = item.split("=", 1)
            key = key.strip()
            if key.count(".") != 1:
                errors.append(FieldError(key, "key must be section.field, e.g. pretrain.max_steps"))
                continue
            section, name = key.split(".")
            data.setdefault(section, {})[name] = parse_value(raw.strip())
        cfg = Config()
        cfg.notes = list(self.notes)
        errors += _merge_into(cfg, data)
        errors += cfg.validate()
        if errors:
            raise ConfigError(errors)
        return cfg

    # ---- validation ----------------------------------------------------------------------------------------
    def validate(self) -> list[FieldError]:
        """Every semantic problem, one FieldError per field, so a form can show each beside its input."""
        e: list[FieldError] = []
        m, d, p, f = self.model, self.data, self.pretrain, self.finetune

        def positive(section: str, obj: Any, *names: str) -> None:
            for n in names:
                if getattr(obj, n) <= 0:
                    e.append(FieldError(f"{section}.{n}", f"must be > 0, got {getattr(obj, n)}"))

        def non_negative(section: str, obj: Any, *names: str) -> None:
            for n in names:
                if getattr(obj, n) < 0:
                    e.append(FieldError(f"{section}.{n}", f"must be >= 0, got {getattr(obj, n)}"))

        def probability(section: str, obj: Any, *names: str) -> None:
            for n in names:
                v = getattr(obj, n)
                if not 0.0 <= v <= 1.0:
                    e.append(FieldError(f"{section}.{n}", f"must be a probability in [0, 1], got {v}"))

        def choice(section: str, obj: Any, name: str, allowed: tuple[str, ...]) -> None:
            v = getattr(obj, name)
            if v not in allowed:
                e.append(FieldError(f"{section}.{name}", f"must be one of {', '.join(allowed)}; got {v!r}"))

        positive(
            "model",
            m,
            "vocab_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "max_position_embeddings",
            "type_vocab_size",
            "layer_norm_eps",
            "initializer_range",
        )
        if m.num_attention_heads > 0 and m.hidden_size % m.num_attention_heads:
            e.append(
                FieldError(
                    "model.hidden_size",
                    f"must be divisible by model.num_attention_heads "
                    f"({m.hidden_size} % {m.num_attention_heads} = {m.hidden_size % m.num_attention_heads})",
                )
            )
        for problem in pruned_heads_problems(m.pruned_heads, m.num_hidden_layers, m.num_attention_heads):
            e.append(FieldError("model.pruned_heads", problem))
        if 0 < m.vocab_size < 100:
            e.append(FieldError("model.vocab_size", f"{m.vocab_size} is implausibly small; use at least 100"))
        probability("model", m, "hidden_dropout_prob", "attention_probs_dropout_prob")
        for key, allowed in CHOICES.items():
            section, name = key.split(".")
            choice(section, getattr(self, section), name, allowed)
        if not 0 <= m.pad_token_id < max(m.vocab_size, 1):
            e.append(FieldError("model.pad_token_id", f"must be in [0, vocab_size), got {m.pad_token_id}"))

        if not d.corpus.strip():
            e.append(FieldError("data.corpus", "must name a corpus: wiki-offline, a hub name or a file path"))
        positive("data", d, "max_seq_length")
        if d.max_seq_length > m.max_position_embeddings:
            e.append(
                FieldError(
                    "data.max_seq_length",
                    f"{d.max_seq_length} exceeds model.max_position_embeddings ({m.max_position_embeddings})",
                )
            )
        if 0 < d.max_seq_length < 16:
            e.append(
                FieldError(
                    "data.max_seq_length", f"must be at least 16 to hold a sentence pair, got {d.max_seq_length}"
                )
            )
        probability(
            "data",
            d,
            "mlm_probability",
            "eval_mlm_probability",
            "mask_replace_prob",
            "random_replace_prob",
            "short_seq_prob",
        )
        if d.mlm_probability == 0:
            e.append(FieldError("data.mlm_probability", "must be > 0: with nothing masked there is nothing to learn"))
        if d.mask_replace_prob + d.random_replace_prob > 1.0 + 1e-9:
            e.append(
                FieldError(
                    "data.random_replace_prob",
                    "mask_replace_prob + random_replace_prob must be <= 1, got "
                    f"{d.mask_replace_prob + d.random_replace_prob:g}",
                )
            )
        non_negative("data", d, "max_documents", "dupe_factor")
        if not 0.0 < d.validation_fraction < 0.5:
            e.append(FieldError("data.validation_fraction", f"must be in (0, 0.5), got {d.validation_fraction}"))

        positive("pretrain", p, "learning_rate")
        positive("distill", self.distill, "learning_rate")
        non_negative("finetune", f, "learning_rate")  # 0: the task's recipe
        for sec in TRAINING_SECTIONS:
            t = getattr(self, sec)
            positive(sec, t, "batch_size", "grad_accum_steps", "log_every", "adam_epsilon")
            (non_negative if sec == "finetune" else positive)(sec, t, "max_steps")  # finetune: 0 = by the data
            non_negative(
                sec,
                t,
                "weight_decay",
                "warmup_steps",
                "max_grad_norm",
                "eval_every",
                "eval_batches",
                "save_every",
                "minutes",
            )
            if t.keep_last < 1:
                e.append(FieldError(f"{sec}.keep_last", f"must be >= 1, got {t.keep_last}"))
            for n in ("adam_beta1", "adam_beta2"):
                if not 0.0 <= getattr(t, n) < 1.0:
                    e.append(FieldError(f"{sec}.{n}", f"must be in [0, 1), got {getattr(t, n)}"))
            unknown = report_names(t.report_to)[1]
            if unknown:
                e.append(
                    FieldError(
                        f"{sec}.report_to",
                        f"unknown reporter {', '.join(map(repr, unknown))}; choose "
                        f"none, {', '.join(REPORTERS)} or a comma-separated list (csv,tensorboard)",
                    )
                )
        r = self.runtime
        non_negative("runtime", r, "num_threads")
        dev = r.device
        if not (dev in ("auto", "cpu", "cuda", "mps") or (dev.startswith("cuda:") and dev[5:].isdigit())):
            e.append(FieldError("runtime.device", f"must be auto, cpu, cuda, cuda:N or mps; got {dev!r}"))

        positive("finetune", f, "decoder_layers", "max_answer_length", "num_beams")
        non_negative(
            "finetune",
            f,
            "max_seq_length",
            "epochs",
            "max_examples",
            "eval_max_seq_length",
            "minutes",
            "no_repeat_ngram_size",
            "max_word_repeats",
        )
        probability("finetune", f, "classifier_dropout", "hidden_dropout_prob", "warmup_ratio")
        if f.max_seq_length > m.max_position_embeddings:
            e.append(
                FieldError(
                    "finetune.max_seq_length",
                    f"{f.max_seq_length} exceeds model.max_position_embeddings ({m.max_position_embeddings})",
                )
            )
        if f.lookup_feature not in ("auto", "on", "off"):
            e.append(FieldError("finetune.lookup_feature", f"must be auto, on or off; got {f.lookup_feature!r}"))
        if f.doc_stride < 0 or 0 < f.max_seq_length <= f.doc_stride:
            e.append(FieldError("finetune.doc_stride", f"must be in [0, finetune.max_seq_length), got {f.doc_stride}"))
        e += self._validate_distill()
        if not self.paths.root.strip():
            e.append(FieldError("paths.root", "must not be empty"))
        return e

    def _validate_distill(self) -> list[FieldError]:
        """[distill]: what can be checked without the teacher (its shape is checked when the run starts)."""
        t, e = self.distill, []
        if t.temperature <= 0:
            e.append(FieldError("distill.temperature", f"must be > 0, got {t.temperature}"))
        for n in (
            "student_layers",
            "student_hidden_size",
            "student_heads",
            "student_intermediate_size",
            "hidden_weight",
            "attention_weight",
            "max_examples",
        ):
            if getattr(t, n) < 0:
                e.append(FieldError(f"distill.{n}", f"must be >= 0, got {getattr(t, n)}"))
        if not 0.0 <= t.alpha <= 1.0:
            e.append(
                FieldError(
                    "distill.alpha",
                    f"must be in [0, 1] (the soft loss's share; the hard loss gets 1 - alpha), got {t.alpha}",
                )
            )
        if t.student_hidden_size > 0 and t.student_heads > 0 and t.student_hidden_size % t.student_heads:
            e.append(
                FieldError(
                    "distill.student_hidden_size",
                    f"must be divisible by distill.student_heads "
                    f"({t.student_hidden_size} % {t.student_heads} = "
                    f"{t.student_hidden_size % t.student_heads})",
                )
            )
        return e


SECTIONS: dict[str, type] = {
    "model": ModelConfig,
    "data": DataConfig,
    "pretrain": PretrainConfig,
    "finetune": FinetuneConfig,
    "distill": DistillConfig,
    "runtime": RuntimeConfig,
    "paths": PathsConfig,
}

MOVED: dict[str, str] = {
    "pretrain.device": "runtime.device",
    "pretrain.num_threads": "runtime.num_threads",
    **{f"{s}.precision": "runtime.precision" for s in TRAINING_SECTIONS},
}
"""Keys an older bert2 read from another place: a config file that has them still works, with a note that says
where they live now (machine settings serve every run, so they have their own section)."""


def section_fields(section_cls: type) -> list[dataclasses.Field]:
    """A section's fields in the order a person reads them: its own first (fine-tuning's task and data before
    the training settings every section shares), then the shared ones."""
    shared = {f.name for f in fields(TrainConfig)} if issubclass(section_cls, TrainConfig) else set()
    all_fields = list(fields(section_cls))
    return [f for f in all_fields if f.name not in shared] + [f for f in all_fields if f.name in shared]


def field_docs(section_cls: type) -> dict[str, str]:
    """Map field name -> the docstring written right below it in the class body (parsed from the source)."""
    cached = _DOCS_CACHE.get(section_cls)
    if cached is not None:
        return cached
    docs: dict[str, str] = {}
    for cls in reversed(section_cls.__mro__[:-1]):  # a base's docs first, a subclass's override them
        try:
            tree = ast.parse(inspect.getsource(cls))
        except (OSError, TypeError, SyntaxError):  # source unavailable (frozen app): no help text, nothing breaks
            continue
        body = tree.body[0].body  # type: ignore[attr-defined]
        for node, nxt in zip(body, body[1:]):
            if (
                isinstance(node, ast.AnnAssign)
                and isinstance(node.target, ast.Name)
                and isinstance(nxt, ast.Expr)
                and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)
            ):
                docs[node.target.id] = nxt.value.value.strip()
    _DOCS_CACHE[section_cls] = docs
    return docs


_DOCS_CACHE: dict[type, dict[str, str]] = {}


def field_types(section_cls: type) -> dict[str, type]:
    hints = get_type_hints(section_cls)
    return {f.name: hints[f.name] for f in fields(section_cls)}


def parse_value(raw: str) -> Any:
    """Parse an override value: true/false, numbers, quoted strings; anything else stays a plain string."""
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return raw


def coerce(value: Any, typ: type, key: str) -> tuple[Any, FieldError | None]:
    """Convert `value` to the field type where that is lossless (int -> float, '3' -> 3); else a FieldError."""
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}
    if typ is bool:
        if isinstance(value, bool):
            return value, None
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true", None
    elif typ is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value, None
        if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
            return int(value), None
        if isinstance(value, str):
            try:
                return int(value.strip()), None
            except ValueError:
                pass
    elif typ is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            v = float(value)
            if v != v or v in (float("inf"), float("-inf")):
                return None, FieldError(key, f"must be a finite number, got {value!r}")
            return v, None
        if isinstance(value, str):
            try:
                v = float(value.strip())
            except ValueError:
                pass
            else:
                if v == v and abs(v) != float("inf"):
                    return v, None
                return None, FieldError(key, f"must be a finite number, got {value!r}")
    elif typ is str:
        if isinstance(value, str):
            return value, None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value), None
    elif getattr(typ, "__origin__", None) is dict:  # model.pruned_heads, the one table-valued field
        if isinstance(value, str):  # --set, or the TUI form's text box
            value = parse_value(value) if value.strip() else {}
        try:
            return normalize_pruned_heads(value), None
        except ValueError as exc:
            return None, FieldError(key, str(exc))
    shown = repr(value)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return None, FieldError(key, f"must be {names.get(typ, typ.__name__)}, got {shown}")


def _suggest(section: str, key: str) -> str:
    """'did you mean ...? ' for a misspelt key: the closest key of the same section, or the same key in another
    section (fine-tuning settings live in [finetune], machine settings such as device in [runtime])."""
    close = difflib.get_close_matches(key, list(field_types(SECTIONS[section])), n=1, cutoff=0.6)
    if close:
        return f"did you mean {section}.{close[0]}? "
    elsewhere = [s for s, cls in SECTIONS.items() if s != section and key in field_types(cls)]
    return f"did you mean {elsewhere[0]}.{key}? " if elsewhere else ""


def _merge_into(cfg: Config, data: Any) -> list[FieldError]:
    errors: list[FieldError] = []
    moved: list[tuple[str, Any]] = []
    if not isinstance(data, dict):
        return [FieldError("<config>", f"must be a table of sections, got {type(data).__name__}")]
    for section, values in data.items():
        if section not in SECTIONS:
            close = difflib.get_close_matches(str(section), list(SECTIONS), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            errors.append(FieldError(str(section), f"unknown section; {hint}allowed: {', '.join(SECTIONS)}"))
            continue
        if not isinstance(values, dict):
            errors.append(FieldError(section, f"must be a table of key = value, got {type(values).__name__}"))
            continue
        obj = getattr(cfg, section)
        types = field_types(SECTIONS[section])
        for key, value in values.items():
            full = f"{section}.{key}"
            if full in MOVED and key not in types:
                moved.append((full, value))  # applied last: over the section it moved to, as the file meant
                continue
            if key not in types:
                errors.append(
                    FieldError(full, f"unknown key; {_suggest(section, key)}{section} has: {', '.join(types)}")
                )
                continue
            converted, err = coerce(value, types[key], full)
            if err:
                errors.append(err)
            else:
                setattr(obj, key, converted)
    for full, value in moved:
        new_section, new_key = MOVED[full].split(".")
        converted, err = coerce(value, field_types(SECTIONS[new_section])[new_key], full)
        if err:
            errors.append(err)
            continue
        setattr(getattr(cfg, new_section), new_key, converted)
        cfg.notes.append(
            f"{full} is now {MOVED[full]} (machine settings serve every run); read as {MOVED[full]} = "
            f"{converted!r}. Move it there to silence this note"
        )
    return errors


def load_config(path: str | os.PathLike | None = None, overrides: list[str] | None = None) -> Config:
    """Load `path` (or ./bert2.toml when present, else defaults), apply overrides, validate; raise ConfigError."""
    data: dict[str, Any] = {}
    if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
        path = DEFAULT_CONFIG_FILE
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError([FieldError("--config", f"file not found: {p}")])
        try:
            data = tomllib.loads(p.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise ConfigError([FieldError("--config", f"{p} is not UTF-8 text ({exc.reason})")]) from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError([FieldError("--config", f"{p} is not valid TOML: {exc}")]) from None
    cfg = Config()
    errors = _merge_into(cfg, data)
    if errors:
        raise ConfigError(errors)
    return cfg.with_overrides(overrides or [])


# --------------------------------------------------------------------------------------------------------------
# Presets
# --------------------------------------------------------------------------------------------------------------

PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # The seed's BERT-Tiny: 2 x 128, 8 heads, length 128. Our default; tuned to learn within minutes on a CPU.
    "tiny": {
        "model": dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=8, intermediate_size=512),
        "data": dict(max_seq_length=128),
        "pretrain": dict(learning_rate=2e-3),
    },
    "mini": {
        "model": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
        "data": dict(max_seq_length=128),
        "pretrain": dict(learning_rate=5e-4),
    },
    "small": {
        "model": dict(hidden_size=512, num_hidden_layers=4, num_attention_heads=8, intermediate_size=2048),
        "data": dict(max_seq_length=128),
        "pretrain": dict(learning_rate=3e-4),
    },
    # The first seed's BERT-Base: 12 x 768, 12 heads, 30522 tokens, length 512.
    "base": {
        "model": dict(
            hidden_size=768,
            num_hidden_layers=12,
            num_attention_heads=12,
            intermediate_size=3072,
            vocab_size=30522,
            hidden_dropout_prob=0.1,
            attention_probs_dropout_prob=0.1,
            position_embedding_type="absolute",
        ),
        "data": dict(max_seq_length=512),
        "pretrain": dict(learning_rate=1e-4, batch_size=16),
    },
}


def preset(name: str, base: Config | None = None) -> Config:
    """A config with preset `name` applied over `base` (defaults when None)."""
    if name not in PRESETS:
        raise ConfigError([FieldError("preset", f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")])
    data = (base or Config()).to_dict()
    for section, values in PRESETS[name].items():
        data[section].update(values)
    return Config.from_dict(data)
