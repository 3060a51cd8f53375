"""The model files of a checkpoint: config.json, model.safetensors and the tokenizer.

One reader and one writer for every caller (the Predictor, fine-tuning, continued pretraining, import/export, the
trainer's resume, the test fixtures), so a broken checkpoint gets the same message wherever it is opened, and
weights are only ever read with safetensors, which holds plain tensors and cannot run code.

config.json uses transformers' keys (so `transformers.BertConfig` reads it) plus a "bert2" block: the task, its
labels and lengths, and bert2's own model fields. A NER tagger that reads the lookup feature also has lookup.json,
the training set's word -> tag table: in memory it is the metadata's LOOKUP_KEY, which write_model_files writes
to its own file (every writer of a checkpoint, pruning's too, so keeps it) and read_metadata reads back, checked.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .. import registry
from ..config import CHOICES, ModelConfig, normalize_pruned_heads, pruned_heads_problems
from ..data.tokenizer import load_tokenizer
from ..errors import CheckpointError
from .layout import CONFIG_FILE, WEIGHTS_FILE, read_json, resolve, write_json
from .validate import check_config, check_lookup, check_weights_header, fail, finite_problems

LOOKUP_FILE = "lookup.json"
"""A NER tagger's word -> tag table (tasks/ner.py, finetune.lookup_feature): {"format": 1, "words": {word: tag}}."""
LOOKUP_KEY = "lookup_table"
"""Where that table sits in the in-memory metadata (never in config.json)."""
LOOKUP_FORMAT = 1

# transformers' hidden_act names -> bert2's. gelu_new, gelu_pytorch_tanh, gelu_fast and gelu_accurate are all the
# tanh approximation 0.5x(1 + tanh(sqrt(2/pi)(x + 0.044715x^3))); gelu and gelu_python are the exact erf GELU.
HF_ACTIVATIONS = {
    "gelu": "gelu",
    "gelu_python": "gelu",
    "gelu_new": "gelu_tanh",
    "gelu_pytorch_tanh": "gelu_tanh",
    "gelu_fast": "gelu_tanh",
    "gelu_accurate": "gelu_tanh",
    "relu": "relu",
}


def hf_config_dict(cfg: ModelConfig) -> dict:
    """transformers-style config.json keys for a bert2 model config, plus norm_placement for pre-LN models,
    feed_forward for GLU ones and position_embedding_type for ALiBi ones, which transformers' BERT cannot represent; a post-LN, absolute-position
    config stays exactly transformers' keys."""
    extra: dict = {"norm_placement": cfg.norm_placement} if cfg.norm_placement != "post" else {}
    if cfg.position_embedding_type != "absolute":
        extra["position_embedding_type"] = cfg.position_embedding_type
    if cfg.feed_forward != "mlp":
        extra["feed_forward"] = cfg.feed_forward
    if cfg.pruned_heads:  # transformers' historical key, {"0": [1, 5]}: heads bert2 prune removed
        extra["pruned_heads"] = normalize_pruned_heads(cfg.pruned_heads)
    return {
        "model_type": "bert",
        "architectures": ["BertForPreTraining"],
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.hidden_size,
        "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads,
        "intermediate_size": cfg.intermediate_size,
        "hidden_act": {"gelu": "gelu", "gelu_tanh": "gelu_new", "relu": "relu"}[cfg.hidden_act],
        "hidden_dropout_prob": cfg.hidden_dropout_prob,
        "attention_probs_dropout_prob": cfg.attention_probs_dropout_prob,
        "max_position_embeddings": cfg.max_position_embeddings,
        "type_vocab_size": cfg.type_vocab_size,
        "layer_norm_eps": cfg.layer_norm_eps,
        "initializer_range": cfg.initializer_range,
        "pad_token_id": cfg.pad_token_id,
        **extra,
    }


def model_config_from_hf(d: dict) -> ModelConfig:
    """Read the bert2 ModelConfig out of a transformers-style config.json dict."""
    act = HF_ACTIVATIONS
    defaults = ModelConfig()
    # Absent in transformers' own files (and written as "absolute" by transformers 4); bert2 writes "alibi".
    positions = str(d.get("position_embedding_type", "absolute"))
    if positions not in CHOICES["model.position_embedding_type"]:
        raise ValueError(
            f"position_embedding_type {positions!r} is not supported; bert2 reads "
            f"{' or '.join(CHOICES['model.position_embedding_type'])}"
        )
    return ModelConfig(
        vocab_size=int(d["vocab_size"]),
        hidden_size=int(d["hidden_size"]),
        num_hidden_layers=int(d["num_hidden_layers"]),
        num_attention_heads=int(d["num_attention_heads"]),
        intermediate_size=int(d["intermediate_size"]),
        hidden_act=act.get(d.get("hidden_act", "gelu"), "gelu"),
        hidden_dropout_prob=float(d.get("hidden_dropout_prob", defaults.hidden_dropout_prob)),
        attention_probs_dropout_prob=float(d.get("attention_probs_dropout_prob", 0.1)),
        max_position_embeddings=int(d.get("max_position_embeddings", 512)),
        type_vocab_size=int(d.get("type_vocab_size", 2)),
        layer_norm_eps=float(d.get("layer_norm_eps", 1e-12)),
        initializer_range=float(d.get("initializer_range", 0.02)),
        pad_token_id=int(d.get("pad_token_id") or 0),
        norm_placement=str(d.get("norm_placement", "post")),
        feed_forward=str(d.get("feed_forward", "mlp")),
        position_embedding_type=positions,
        pruned_heads=_pruned_heads(d),
    )


def _pruned_heads(d: dict) -> dict[str, list[int]]:
    """config.json's pruned_heads, normalised and checked against the model's shape (ValueError otherwise), so a
    hand-edited file fails here with its reason instead of as a shape mismatch deep in load_state_dict."""
    try:
        pruned = normalize_pruned_heads(d.get("pruned_heads") or {})
    except ValueError as exc:
        raise ValueError(f"pruned_heads: {exc}") from None
    problems = pruned_heads_problems(pruned, int(d["num_hidden_layers"]), int(d["num_attention_heads"]))
    if problems:
        raise ValueError(f"pruned_heads: {'; '.join(problems)}")
    return pruned


# --------------------------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------------------------


def read_config(path: Path | str) -> tuple[ModelConfig, dict[str, Any]]:
    """A checkpoint's config.json as (ModelConfig, the raw dict); CheckpointError naming the file when broken."""
    f = Path(path) / CONFIG_FILE
    config = read_json(f)
    return check_config(f, config, model_config_from_hf), config


def read_tokenizer(path: Path | str, vocab_size: int | None = None) -> Any:
    """The checkpoint's tokenizer; CheckpointError when missing, broken, or of another size than the model's
    vocabulary (a tokenizer from another run would silently map words to the wrong embeddings)."""
    _check_tokenizer_files(Path(path))
    try:
        tokenizer = load_tokenizer(str(path))
    except Exception as exc:  # TokenizerError, or whatever transformers raises on a damaged file
        raise CheckpointError(f"{path} has no usable tokenizer: {exc}") from None
    if vocab_size is not None and len(tokenizer) != vocab_size:
        raise CheckpointError(
            f"{path}: the tokenizer has {len(tokenizer)} tokens but the model's vocabulary is "
            f"{vocab_size}; the checkpoint is inconsistent"
        )
    return tokenizer


TOKENIZER_JSON_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


TOKEN_FIELDS = ("cls_token", "sep_token", "pad_token", "mask_token", "unk_token")


def tokenizer_config_problems(data: dict[str, Any]) -> list[str]:
    """The settings of tokenizer_config.json that transformers applies when text is encoded, type-checked here:
    a wrong type there fails much later, at the first sentence, as a TypeError deep inside transformers."""
    problems = []
    n = data.get("model_max_length")
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n <= 0):  # 2.5 fails in truncation
        problems.append(f"model_max_length: must be a positive integer, got {str(n)[:40]}")
    for key in ("do_lower_case", "tokenize_chinese_chars", "clean_up_tokenization_spaces"):
        if key in data and not isinstance(data[key], bool):
            problems.append(f"{key}: must be true or false, got {str(data[key])[:40]}")
    if "strip_accents" in data and data["strip_accents"] is not None and not isinstance(data["strip_accents"], bool):
        problems.append(f"strip_accents: must be true, false or null, got {str(data['strip_accents'])[:40]}")
    for key in ("padding_side", "truncation_side"):
        if key in data and data[key] not in ("left", "right"):
            problems.append(f"{key}: must be left or right, got {str(data[key])[:40]}")
    for key in TOKEN_FIELDS:
        v = data.get(key)
        if key in data and not (isinstance(v, str) or (isinstance(v, dict) and isinstance(v.get("content"), str))):
            problems.append(f"{key}: must be a token string, got {str(v)[:40]}")
    return problems


def _check_tokenizer_files(path: Path) -> None:
    """CheckpointError naming the tokenizer file that is not a JSON object (or vocab.txt that is not UTF-8 text):
    the tokenizer library's own message names neither the file nor, often, the problem."""
    for name in TOKENIZER_JSON_FILES:
        f = path / name
        if not f.is_file():
            continue
        try:
            data = json.loads(f.read_bytes().decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise CheckpointError(f"{f} is not UTF-8 text (byte {exc.start}): the file is damaged") from None
        except json.JSONDecodeError as exc:
            raise CheckpointError(
                f"{f} is not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}): the file is damaged"
            ) from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{f} does not hold a JSON object: the file is damaged")
        if name == "tokenizer_config.json":
            problems = tokenizer_config_problems(data)
            if problems:
                raise CheckpointError(f"{f}: {'; '.join(problems)}")
    vocab = path / "vocab.txt"
    if vocab.is_file():
        raw = vocab.read_bytes()
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise CheckpointError(f"{vocab} is not UTF-8 text (line {line}): the file is damaged") from None


def read_weights(path: Path | str, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """model.safetensors as a state dict; CheckpointError when truncated or corrupt."""
    f = Path(path) / WEIGHTS_FILE
    try:
        tensors = load_file(str(f), device=str(device))
    except Exception as exc:  # safetensors raises its own SafetensorError, OSError, ...
        raise CheckpointError(f"{f} is unreadable (truncated or corrupt?): {exc}") from None
    problems = finite_problems(tensors)
    if problems:
        raise fail(f, problems)
    return tensors


def read_metadata(path: Path | str, config: dict[str, Any]) -> dict[str, Any]:
    """config.json's "bert2" block, with the files it names read back in (lookup.json as LOOKUP_KEY, checked
    against the block's labels); CheckpointError naming the file when one is missing or broken."""
    meta = dict(config.get("bert2") or {})  # check_config made sure it is an object
    meta.pop(LOOKUP_KEY, None)  # only lookup.json may say what the table is
    if meta.get("lookup_feature"):
        f = Path(path) / LOOKUP_FILE
        labels = meta.get("labels")
        meta[LOOKUP_KEY] = check_lookup(f, read_json(f), labels if isinstance(labels, list) else [], LOOKUP_FORMAT)
    return meta


def build_model(task: str, model_cfg: ModelConfig, meta: dict[str, Any], tokenizer: Any = None) -> nn.Module:
    """An untrained model of the class a checkpoint's task needs, as the task registry builds it (its weights are
    loaded afterwards)."""
    try:
        task_cls = registry.get(task)
    except registry.UnknownTask as exc:
        raise CheckpointError(f"{exc} (config.json bert2.task)") from None
    return task_cls.build_model(model_cfg, meta, tokenizer)


@dataclass
class LoadedCheckpoint:
    """Everything a checkpoint directory holds, read and checked against each other."""

    path: Path
    model_cfg: ModelConfig
    config: dict[str, Any]  # config.json as written
    tokenizer: Any
    model: nn.Module | None = None  # None when loaded with weights=False
    meta: dict[str, Any] = field(default_factory=dict)  # the "bert2" block

    @property
    def task(self) -> str:
        return str(self.meta.get("task", "mlm+nsp"))


def load_checkpoint(path: Path | str, device: str | torch.device = "cpu", weights: bool = True) -> LoadedCheckpoint:
    """Open a checkpoint (a step, stage or kind directory): config, tokenizer and, with `weights`, the model of
    its task with every tensor loaded strictly. Raises CheckpointError naming what is wrong."""
    p = resolve(path)
    model_cfg, config = read_config(p)
    meta = read_metadata(p, config)
    tokenizer = read_tokenizer(p, model_cfg.vocab_size)
    loaded = LoadedCheckpoint(p, model_cfg, config, tokenizer, meta=meta)
    if not weights:
        return loaded
    model = build_model(loaded.task, model_cfg, meta, tokenizer)
    check_weights_header(p / WEIGHTS_FILE, model.state_dict())  # names, shapes, dtypes before any tensor is read
    try:
        model.load_state_dict(read_weights(p, device), strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0:2]
        raise CheckpointError(f"{p}: weights do not match its config.json ({' '.join(first)})") from None
    loaded.model = model.to(device)
    return loaded


# --------------------------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------------------------


def write_model_files(
    model_cfg: ModelConfig, tokenizer: Any, directory: Path, meta: dict[str, Any], extra: dict[str, Any] | None = None
) -> None:
    """config.json (transformers keys, `extra` keys such as id2label, and a "bert2" block with the task metadata
    and bert2's own model fields) and the tokenizer files."""
    data = hf_config_dict(model_cfg)
    data.update(extra or {})
    table = meta.get(LOOKUP_KEY)
    data["bert2"] = {**{k: v for k, v in meta.items() if k != LOOKUP_KEY}, "model": dataclasses.asdict(model_cfg)}
    if table is not None:
        write_json(Path(directory) / LOOKUP_FILE, {"format": LOOKUP_FORMAT, "words": table})
    write_json(Path(directory) / CONFIG_FILE, data)
    tokenizer.save_pretrained(str(directory))


def write_weights(model: nn.Module, directory: Path) -> None:
    """model.safetensors from the model's state dict (on the CPU, contiguous: what safetensors stores)."""
    sd = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(sd, str(Path(directory) / WEIGHTS_FILE), metadata={"format": "pt"})


def write_model(
    model: nn.Module, tokenizer: Any, directory: Path, meta: dict[str, Any], extra: dict[str, Any] | None = None
) -> None:
    """Everything but trainer_state.json: weights, config.json (from `model.config`) and tokenizer."""
    write_weights(model, directory)
    write_model_files(model.config, tokenizer, directory, meta, extra)
