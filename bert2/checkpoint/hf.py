"""Hugging Face interoperability: the bert2 <-> transformers parameter-name mapping, and `import_hf` / `export_hf`
behind `bert2 import-hf` and `bert2 export-hf`.

bert2 fuses query/key/value into one (3H, H) projection and uses short names; everything else is one tensor to
one tensor. The mapping is a pure function of the state dict, so import, export and the parity test share it.

Import turns any BERT checkpoint transformers can read (BertForPreTraining, BertForMaskedLM, a bare BertModel,
even a fine-tuned BertFor... whose task head is simply not used) into a complete bert2 pretraining checkpoint, so
the Predictor, `bert2 finetune --from` and the TUI need no second loading path. Export goes the other way and
writes a directory `from_pretrained` loads with no missing and no unexpected keys, so a bert2 model can be shared
and served with the ordinary Hugging Face tools.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import transformers
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, GatedRepoError, HfHubHTTPError, RepositoryNotFoundError
from safetensors.torch import load_file
from transformers.utils import logging as hf_logging

from .. import registry
from ..config import ModelConfig
from ..data.hub import hub_offline_mode, hub_reachable, offline_env
from ..data.tokenizer import load_tokenizer, save_tokenizer
from ..errors import CheckpointError, TokenizerError
from ..model import BertForPreTraining
from .layout import read_json, read_state, resolve, write_directory, write_state
from .model_card import model_card, portable_name
from .model_files import (
    HF_ACTIVATIONS,
    hf_config_dict,
    model_config_from_hf,
    read_config,
    read_tokenizer,
    read_weights,
    write_model_files,
    write_weights,
)
from .remote import modeling_bert2 as remote_modeling
from .remote.configuration_bert2 import Bert2AlibiConfig
from .train_state import check_safe_torch

# bert2 name (regex) -> transformers name (format string), for the tensors that map one to one.
_ONE_TO_ONE = [
    (r"bert\.embeddings\.norm\.(weight|bias)", "bert.embeddings.LayerNorm.{0}"),
    (r"bert\.embeddings\.(word|position|token_type)_embeddings\.weight", "bert.embeddings.{0}_embeddings.weight"),
    (
        r"bert\.encoder\.layers\.(\d+)\.attention\.out\.(weight|bias)",
        "bert.encoder.layer.{0}.attention.output.dense.{1}",
    ),
    (
        r"bert\.encoder\.layers\.(\d+)\.attention_norm\.(weight|bias)",
        "bert.encoder.layer.{0}.attention.output.LayerNorm.{1}",
    ),
    (r"bert\.encoder\.layers\.(\d+)\.ffn\.up\.(weight|bias)", "bert.encoder.layer.{0}.intermediate.dense.{1}"),
    (r"bert\.encoder\.layers\.(\d+)\.ffn\.down\.(weight|bias)", "bert.encoder.layer.{0}.output.dense.{1}"),
    (r"bert\.encoder\.layers\.(\d+)\.ffn_norm\.(weight|bias)", "bert.encoder.layer.{0}.output.LayerNorm.{1}"),
    (r"bert\.pooler\.dense\.(weight|bias)", "bert.pooler.dense.{0}"),
    (r"mlm\.transform\.(weight|bias)", "cls.predictions.transform.dense.{0}"),
    (r"mlm\.norm\.(weight|bias)", "cls.predictions.transform.LayerNorm.{0}"),
    (r"mlm\.bias", "cls.predictions.bias"),
    (r"nsp\.(weight|bias)", "cls.seq_relationship.{0}"),
    # Fine-tuning heads (bert2.model.heads) already use transformers' names for their task layers.
    (r"classifier\.(weight|bias)", "classifier.{0}"),
    (r"qa_outputs\.(weight|bias)", "qa_outputs.{0}"),
]
_QKV = re.compile(r"bert\.encoder\.layers\.(\d+)\.attention\.qkv\.(weight|bias)")


def to_hf_state_dict(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """bert2 BertForPreTraining state dict -> transformers BertForPreTraining state dict (decoder tied)."""
    out: dict[str, torch.Tensor] = {}
    for name, t in sd.items():
        m = _QKV.fullmatch(name)
        if m:
            layer, kind = m.groups()
            for part, chunk in zip(("query", "key", "value"), t.chunk(3, dim=0)):  # (3H, ...) -> 3 x (H, ...)
                out[f"bert.encoder.layer.{layer}.attention.self.{part}.{kind}"] = chunk.clone()
            continue
        for pattern, target in _ONE_TO_ONE:
            m = re.fullmatch(pattern, name)
            if m:
                out[target.format(*m.groups())] = t
                break
        else:
            raise KeyError(f"no transformers name for bert2 parameter {name!r}")
    if "bert.embeddings.word_embeddings.weight" in out and "cls.predictions.bias" in out:
        out["cls.predictions.decoder.weight"] = out["bert.embeddings.word_embeddings.weight"]
        out["cls.predictions.decoder.bias"] = out["cls.predictions.bias"]
    return out


def from_hf_state_dict(hf: dict[str, torch.Tensor], unused: list[str] | None = None) -> dict[str, torch.Tensor]:
    """transformers BERT state dict (BertForPreTraining, BertForMaskedLM or BertModel) -> bert2 names.

    A bare BertModel checkpoint has no "bert." prefix; it is added. The LayerNorm names of checkpoints converted
    from the original TensorFlow release (`LayerNorm.gamma` / `.beta`, still found in old pytorch_model.bin
    files) are read as `.weight` / `.bias`, as transformers itself does. Unknown keys (e.g. position_ids buffers,
    the tied decoder copy) are skipped and, when `unused` is given, appended to it (with their original names)
    so an import can say what it left behind.
    """
    prefix = "" if any(k.startswith("bert.") for k in hf) else "bert."

    def normalised(key: str) -> str:
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key))
        return prefix + key

    reverse = [
        (re.compile(re.escape(target).replace(r"\{0\}", r"(\w+)").replace(r"\{1\}", r"(\w+)")), pattern)
        for pattern, target in _ONE_TO_ONE
    ]
    out: dict[str, torch.Tensor] = {}
    qkv: dict[tuple[str, str], dict[str, torch.Tensor]] = {}
    for original, t in hf.items():
        name = normalised(original)
        m = re.fullmatch(r"bert\.encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.(weight|bias)", name)
        if m:
            layer, part, kind = m.groups()
            qkv.setdefault((layer, kind), {})[part] = t
            continue
        for rx, pattern in reverse:
            mm = rx.fullmatch(name)
            if mm:
                groups = iter(mm.groups())
                out[re.sub(r"\([^)]*\)", lambda _, g=groups: next(g), pattern).replace("\\.", ".")] = t
                break
        else:
            if unused is not None:
                unused.append(original)
    for (layer, kind), parts in qkv.items():
        if len(parts) != 3:
            raise KeyError(f"layer {layer} has only the {'/'.join(sorted(parts))} attention {kind} of query/key/value")
        out[f"bert.encoder.layers.{layer}.attention.qkv.{kind}"] = torch.cat(
            [parts["query"], parts["key"], parts["value"]], dim=0
        )  # 3 x (H, ...) -> (3H, ...)
    return out


def expand_pruned_heads(sd: dict[str, torch.Tensor], cfg: ModelConfig) -> dict[str, torch.Tensor]:
    """A pruned model's state dict (bert2 names) at full size again: every removed head gets zero query, key and
    value rows and zero out-projection columns, back at its original place.

    Why zeros are exact: a head whose value rows are zero outputs exactly 0 whatever its attention pattern (its
    query and key rows are zeroed too, for tidiness), and zero out-projection columns would silence it anyway. So
    the full-size model computes what the pruned one does, in a layout every BERT loader accepts; transformers 5
    removed `prune_heads`, so export needs no pruning support on the other side. The cost: the exported files and
    compute are those of the unpruned model.
    """
    nh, H = cfg.num_attention_heads, cfg.hidden_size
    hs = H // nh
    out = dict(sd)
    for key, gone in cfg.pruned_heads.items():
        kept = [h for h in range(nh) if h not in set(gone)]
        slots = torch.cat([torch.arange(h * hs, (h + 1) * hs) for h in kept])  # (inner,) kept rows in the full layout
        prefix = f"bert.encoder.layers.{int(key)}.attention."
        for kind in ("weight", "bias"):
            small = sd[prefix + f"qkv.{kind}"]  # (3 * inner, H) or (3 * inner,)
            full = small.new_zeros((3, H) + tuple(small.shape[1:]))  # (3, H, H) or (3, H): q | k | v
            full[:, slots] = small.view((3, len(slots)) + tuple(small.shape[1:]))
            out[prefix + f"qkv.{kind}"] = full.view((3 * H,) + tuple(small.shape[1:]))  # (3H, H) or (3H,)
        small = sd[prefix + "out.weight"]  # (H, inner)
        full = small.new_zeros(H, H)
        full[:, slots] = small
        out[prefix + "out.weight"] = full  # (H, H)
    return out


# ==============================================================================================================
# Whole checkpoint directories: `bert2 import-hf` and `bert2 export-hf`
# ==============================================================================================================

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")

# Parameter groups of bert2's BertForPreTraining that an import may have to initialise afresh, and what they are.
FRESH_GROUPS = {
    "bert.pooler": "the pooler (the [CLS] summary that NSP and classification read)",
    "mlm": "the masked-language-model head",
    "nsp": "the next-sentence-prediction head",
}

# An ALiBi model exports as transformers' BERT with the attention mask swapped (checkpoint/remote/), loaded with
# trust_remote_code=True: these are the classes and the auto_map that tells transformers where they are.
REMOTE_CLASSES = {
    "BertForPreTraining": "Bert2AlibiForPreTraining",
    "BertForMaskedLM": "Bert2AlibiForMaskedLM",
    "BertForSequenceClassification": "Bert2AlibiForSequenceClassification",
    "BertForQuestionAnswering": "Bert2AlibiForQuestionAnswering",
    "BertForTokenClassification": "Bert2AlibiForTokenClassification",
}
REMOTE_FILES = ("configuration_bert2.py", "modeling_bert2.py")
REMOTE_AUTO_MAP = {
    "AutoConfig": "configuration_bert2.Bert2AlibiConfig",
    "AutoModel": "modeling_bert2.Bert2AlibiModel",
    "AutoModelForPreTraining": "modeling_bert2.Bert2AlibiForPreTraining",
    "AutoModelForMaskedLM": "modeling_bert2.Bert2AlibiForMaskedLM",
    "AutoModelForSequenceClassification": "modeling_bert2.Bert2AlibiForSequenceClassification",
    "AutoModelForQuestionAnswering": "modeling_bert2.Bert2AlibiForQuestionAnswering",
    "AutoModelForTokenClassification": "modeling_bert2.Bert2AlibiForTokenClassification",
}
# --arch choices for pretraining checkpoints (fine-tuned ones have exactly one transformers class).
EXPORT_ARCHS = {"pretraining": "BertForPreTraining", "masked-lm": "BertForMaskedLM"}


@dataclass
class ImportResult:
    """What `import_hf` wrote and what it could not take from the source."""

    path: Path
    """The bert2 checkpoint directory written."""
    source: str
    """The directory or hub id as given."""
    source_dir: Path
    """Where the files were read (the hub cache snapshot for a hub id)."""
    architecture: str
    """The source's transformers class (from config.json, or guessed from its weights)."""
    model_config: ModelConfig
    fresh: list[str] = field(default_factory=list)
    """Parameter groups (keys of FRESH_GROUPS) the source lacked, freshly initialised."""
    unused: list[str] = field(default_factory=list)
    """Source tensors not imported (a task head of a fine-tuned source, an untied decoder...)."""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "source": self.source,
            "source_dir": str(self.source_dir),
            "architecture": self.architecture,
            "model": asdict(self.model_config),
            "fresh": self.fresh,
            "unused": self.unused,
            "warnings": self.warnings,
        }


@dataclass
class ExportResult:
    """What `export_hf` wrote."""

    path: Path
    checkpoint: Path
    """The bert2 checkpoint exported (after resolving stage/kind directories)."""
    task: str
    architecture: str
    """The transformers class the directory loads into without missing or unexpected keys."""
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "checkpoint": str(self.checkpoint),
            "task": self.task,
            "architecture": self.architecture,
            "warnings": self.warnings,
        }


# ---- reading a Hugging Face directory -------------------------------------------------------------------------
def resolve_hf_source(source: str | os.PathLike) -> Path:
    """A local model directory as is; otherwise a hub id (`bert-base-uncased`, `google-bert/bert-base-cased`)
    fetched into (or found in) the Hugging Face cache.

    The hub is probed first (`bert2.data.hub.hub_reachable`): offline, huggingface_hub would otherwise retry for
    minutes before failing. When it is unreachable only the local cache is consulted, so a model downloaded
    earlier still imports offline, and anything else fails at once with a message saying so.
    """
    text = str(source).strip()
    if not text:
        raise CheckpointError(
            "no source given: pass a Hugging Face model directory (config.json + weights) or a "
            "hub id such as google-bert/bert-base-uncased"
        )
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise CheckpointError(f"{text} is a file; pass the model directory that holds config.json and the weights")
    if text.startswith((".", "~")) or not _HUB_ID.fullmatch(text):
        raise CheckpointError(f"model directory not found: {text}")
    return _fetch_from_hub(text)


def _fetch_from_hub(repo_id: str) -> Path:
    """Download (or find cached) the files an import reads; returns the snapshot directory holding them."""
    online = hub_reachable()
    why = "HF_HUB_OFFLINE is set" if offline_env() else "no network connection"

    def get(name: str) -> Path | None:
        """The file's local path, or None when the repository (or, offline, the cache) has no such file."""
        try:
            if online:
                return Path(hf_hub_download(repo_id, name))
            with hub_offline_mode():
                return Path(hf_hub_download(repo_id, name, local_files_only=True))
        except EntryNotFoundError:
            return None
        except GatedRepoError:
            raise CheckpointError(
                f"hub model {repo_id!r} is gated: accept its terms on huggingface.co and log in "
                "(`hf auth login`), or pass a local directory"
            ) from None
        except RepositoryNotFoundError:
            raise CheckpointError(
                f"{repo_id!r} is neither a local directory nor a model on the Hugging Face hub"
            ) from None
        except (HfHubHTTPError, OSError, ValueError) as exc:
            raise CheckpointError(f"could not download {name} of {repo_id!r}: {type(exc).__name__}: {exc}") from None

    config = get("config.json")
    if config is None:
        if not online:
            raise CheckpointError(
                f"{repo_id!r} is not a local directory, the Hugging Face hub cannot be reached "
                f"({why}) and the model is not in the local cache; download it on a connected "
                f"machine (`hf download {repo_id}`) and pass the directory"
            )
        raise CheckpointError(f"hub model {repo_id!r} has no config.json; it is not a transformers model")
    for name in HF_TOKENIZER_FILES:
        get(name)
    if get("model.safetensors") is None and get("pytorch_model.bin") is None:
        index = get("model.safetensors.index.json") or get("pytorch_model.bin.index.json")
        if index is None:
            where = "in the local cache" if not online else "on the hub"
            raise CheckpointError(
                f"{repo_id!r} has no PyTorch weights {where} (model.safetensors or pytorch_model.bin)"
            )
        for shard in sorted(set(_read_index(index).values())):
            if get(shard) is None:
                raise CheckpointError(f"{repo_id!r}: weight shard {shard} is missing")
    return config.parent


def _read_index(index: Path) -> dict[str, str]:
    """weight_map of a sharded checkpoint's *.index.json: tensor name -> shard file."""
    weight_map = read_json(index).get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise CheckpointError(f"{index} has no weight_map")
    return {str(k): str(v) for k, v in weight_map.items()}


def read_hf_config(directory: Path) -> tuple[dict[str, Any], ModelConfig]:
    """config.json of a Hugging Face BERT directory, checked for what bert2's BertModel can represent.

    Stricter than `model_config_from_hf` (which trusts configs bert2 wrote itself): an unknown activation or a
    relative-position / decoder variant would otherwise import "successfully" and compute something else.
    """
    f = directory / "config.json"
    if not f.is_file():
        listing = ", ".join(sorted(p.name for p in directory.iterdir())[:8]) or "nothing"
        raise CheckpointError(
            f"{directory} is not a Hugging Face model directory: config.json is missing (it holds: {listing})"
        )
    d = read_json(f)
    if isinstance(d.get("bert2"), dict) and (directory / "trainer_state.json").is_file():
        raise CheckpointError(f"{directory} is already a bert2 checkpoint; use it directly (--checkpoint, --from)")
    model_type = d.get("model_type")
    architectures = [str(a) for a in d.get("architectures") or []]
    if model_type != "bert" and not (
        model_type is None and architectures and all(a.startswith("Bert") for a in architectures)
    ):
        what = f"a {model_type!r} model" if model_type else "a model without model_type"
        raise CheckpointError(
            f"{f} describes {what}, not BERT; bert2 imports model_type 'bert' checkpoints "
            "only (BertModel, BertForPreTraining, BertForMaskedLM and fine-tuned BertFor...)"
        )
    missing = [
        k
        for k in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
        if k not in d
    ]
    if missing:
        raise CheckpointError(f"{f} lacks {', '.join(missing)}")
    act = d.get("hidden_act", "gelu")
    if act not in HF_ACTIVATIONS:
        raise CheckpointError(
            f"{f}: hidden_act {act!r} is not supported; bert2 implements {', '.join(sorted(HF_ACTIVATIONS))}"
        )
    if d.get("position_embedding_type", "absolute") != "absolute":
        raise CheckpointError(
            f"{f}: position_embedding_type {d['position_embedding_type']!r} is not supported; "
            "bert2 imports absolute position embeddings only"
        )
    if d.get("is_decoder") or d.get("add_cross_attention"):
        raise CheckpointError(
            f"{f} is a BERT decoder (is_decoder / add_cross_attention); bert2 imports the bidirectional encoder only"
        )
    try:
        cfg = model_config_from_hf(d)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{f} has an invalid value: {exc}") from None
    if cfg.hidden_size % cfg.num_attention_heads:
        raise CheckpointError(
            f"{f}: hidden_size {cfg.hidden_size} is not divisible by num_attention_heads {cfg.num_attention_heads}"
        )
    return d, cfg


def read_hf_weights(directory: Path) -> dict[str, torch.Tensor]:
    """Every tensor of model.safetensors or pytorch_model.bin (single file or sharded), as float32 on the CPU.

    float32 because bert2 trains and serves fp32 master weights (autocast does the rest); half-precision hub
    checkpoints therefore import exactly and simply take twice the disk space.
    """
    single = [directory / "model.safetensors", directory / "pytorch_model.bin"]
    indexes = [directory / "model.safetensors.index.json", directory / "pytorch_model.bin.index.json"]
    files = next(([f] for f in single if f.is_file()), None)
    if files is None:
        index = next((i for i in indexes if i.is_file()), None)
        if index is None:
            other = [n for n in ("tf_model.h5", "flax_model.msgpack", "model.ckpt.index") if (directory / n).exists()]
            hint = (
                (
                    f" ({', '.join(other)} is TensorFlow/Flax: load it with transformers and save_pretrained it "
                    "as PyTorch first)"
                )
                if other
                else ""
            )
            raise CheckpointError(
                f"{directory} has no PyTorch weights: expected model.safetensors or pytorch_model.bin{hint}"
            )
        files = [directory / shard for shard in sorted(set(_read_index(index).values()))]
    out: dict[str, torch.Tensor] = {}
    for f in files:
        if f.suffix != ".safetensors":
            check_safe_torch(str(f))  # a .bin is a pickle: only torch's restricted loader, on a torch without holes
        try:
            if f.suffix == ".safetensors":
                part = load_file(str(f))
            else:
                part = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise CheckpointError(f"{f} is unreadable (truncated or corrupt?): {type(exc).__name__}: {exc}") from None
        if not isinstance(part, dict):
            raise CheckpointError(f"{f} does not hold a state dict")
        out.update(part)
    return {k: (v.float() if v.is_floating_point() else v) for k, v in out.items()}


def _guess_architecture(weights: dict[str, torch.Tensor]) -> str:
    if any(k.startswith("cls.predictions.") for k in weights):
        return (
            "BertForPreTraining" if any(k.startswith("cls.seq_relationship.") for k in weights) else "BertForMaskedLM"
        )
    return "BertModel"


def _group(name: str) -> str:
    """'bert.pooler.dense.weight' -> 'bert.pooler'; 'mlm.norm.bias' -> 'mlm'; 'nsp.weight' -> 'nsp'."""
    return "bert.pooler" if name.startswith("bert.pooler.") else name.split(".", 1)[0]


# ---- import ---------------------------------------------------------------------------------------------------
def import_hf(
    source: str | os.PathLike, out_dir: str | os.PathLike, force: bool = False, seed: int = 0
) -> ImportResult:
    """Turn a Hugging Face BERT checkpoint (directory or hub id) into a complete bert2 pretraining checkpoint.

    The output is a BertForPreTraining with NSP ("mlm+nsp"), because that is the one model every bert2 path
    accepts: the Predictor (fill-mask, attention, embeddings), `bert2 finetune --from` (which reads `bert.*`) and
    pretraining. It has no optimizer state; trainer_state.json says step 0 and carries an `imported_from` block,
    so a trainer can tell it apart from an interrupted run and start from its weights. What the source lacks is initialised afresh, as `BertForPreTraining.__init__` does,
    with a fixed `seed` so the same source always gives the same files: a BertModel has no MLM or NSP head,
    a BertForMaskedLM no NSP head and no pooler. `ImportResult.fresh` lists those groups and
    `ImportResult.warnings` says what that means; the caller decides how loudly to say it (the CLI prints the
    warnings on stderr).

    A vocabulary table larger than the tokenizer (some checkpoints pad vocab_size to a multiple of 8) is cut
    to the tokenizer: the extra rows belong to ids the tokenizer never produces, and bert2 requires the two to
    agree. A table smaller than the tokenizer cannot be fixed and is an error.
    """
    src = resolve_hf_source(source)
    hf_cfg, cfg = read_hf_config(src)
    try:
        tokenizer = load_tokenizer(str(src))
    except TokenizerError as exc:
        raise CheckpointError(f"{src} has no usable BERT tokenizer (vocab.txt or tokenizer.json): {exc}") from None
    weights = read_hf_weights(src)
    architecture = str((hf_cfg.get("architectures") or [_guess_architecture(weights)])[0])
    hf_unused: list[str] = []
    try:
        state = from_hf_state_dict(weights, hf_unused)
    except KeyError as exc:
        raise CheckpointError(f"{src}: incomplete attention weights ({exc.args[0]})") from None
    warnings: list[str] = []

    # The tied output projection: bert2 always uses the word embeddings; say so if the source did not.
    expected = {"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"}
    decoder = weights.get("cls.predictions.decoder.weight")
    embeddings = state.get("bert.embeddings.word_embeddings.weight")
    if decoder is not None and embeddings is not None and not torch.equal(decoder, embeddings):
        warnings.append(
            "the source's MLM output projection is not tied to its word embeddings; bert2 ties them, "
            "so cls.predictions.decoder.weight was dropped and fill-mask scores will differ"
        )
        expected.discard("cls.predictions.decoder.weight")
    unused = [k for k in hf_unused if k not in expected and not k.endswith(("position_ids", "token_type_ids"))]

    vocab = len(tokenizer)
    if embeddings is not None:
        rows = embeddings.shape[0]
        if rows < vocab:
            raise CheckpointError(
                f"{src}: the tokenizer has {vocab} tokens but the embedding table only {rows} "
                "rows; the tokenizer does not belong to these weights"
            )
        if rows > vocab:
            state["bert.embeddings.word_embeddings.weight"] = embeddings[:vocab].clone()  # (V, H)
            if "mlm.bias" in state:
                state["mlm.bias"] = state["mlm.bias"][:vocab].clone()  # (V,)
            warnings.append(
                f"the embedding table has {rows} rows but the tokenizer {vocab} tokens; the "
                f"{rows - vocab} rows no token id reaches were dropped"
            )
    cfg = dataclasses.replace(cfg, vocab_size=vocab, pad_token_id=int(tokenizer.pad_token_id))

    with torch.random.fork_rng(devices=[]):  # a fixed seed without disturbing the caller's random state
        torch.manual_seed(seed)
        model = BertForPreTraining(cfg, nsp=True)
    own = model.state_dict()
    mapped: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name not in own:  # e.g. classifier.* of a fine-tuned BertForSequenceClassification
            unused.append(name)
            continue
        if own[name].shape != tensor.shape:
            raise CheckpointError(
                f"{src}: {name} has shape {tuple(tensor.shape)} but config.json implies "
                f"{tuple(own[name].shape)}; config.json and the weights disagree"
            )
        mapped[name] = tensor
    lost = [k for k in own if k not in mapped and k.startswith(("bert.embeddings.", "bert.encoder."))]
    if lost:
        raise CheckpointError(
            f"{src} lacks encoder weights ({', '.join(lost[:3])}{' ...' if len(lost) > 3 else ''})"
            "; is it a complete BERT checkpoint?"
        )
    model.load_state_dict(mapped, strict=False)
    fresh = sorted({_group(k) for k in own if k not in mapped})
    if fresh:
        what = ", ".join(FRESH_GROUPS.get(g, g) for g in fresh)
        consequence = (
            "fill-mask predictions are meaningless until you continue pretraining; fine-tuning, "
            "embeddings and similarity use the imported encoder and are unaffected"
            if "mlm" in fresh
            else "next-sentence logits are random until you continue pretraining; fill-mask and "
            "fine-tuning use the imported weights"
        )
        warnings.insert(
            0,
            f"{source} is a {architecture} checkpoint without {what}: "
            f"{'they were' if len(fresh) > 1 else 'it was'} freshly initialised; {consequence}",
        )
    if unused:
        groups = sorted({n.rsplit(".", 1)[0] for n in unused})
        warnings.append(
            f"not imported (no place for them in bert2's BertForPreTraining): {', '.join(groups[:6])}"
            f"{' ...' if len(groups) > 6 else ''}"
        )

    provenance = {"source": str(source), "source_dir": str(src.resolve()), "architecture": architecture, "fresh": fresh}
    out_path = Path(out_dir).expanduser()

    def payload(directory: Path) -> None:
        write_weights(model, directory)
        write_model_files(cfg, tokenizer, directory, {"task": "mlm+nsp", "nsp": True, "imported_from": provenance})
        save_tokenizer(tokenizer, directory)  # adds the classic vocab.txt beside tokenizer.json
        write_state(
            directory,
            kind="pretrain",
            task="mlm+nsp",
            step=0,
            imported_from=provenance,
            note=f"imported from the Hugging Face checkpoint {source} by `bert2 import-hf`; no optimizer state",
        )

    path = write_directory(out_path, payload, force, protect=(src,))
    return ImportResult(path, str(source), src, architecture, cfg, fresh, sorted(unused), warnings)


# ---- export ---------------------------------------------------------------------------------------------------
def export_hf(
    checkpoint: str | os.PathLike, out_dir: str | os.PathLike, force: bool = False, arch: str | None = None
) -> ExportResult:
    """Write a bert2 checkpoint as a transformers model directory (config.json, model.safetensors, tokenizer).

    The weights go through the transformers class itself (instantiate, `load_state_dict`, `save_pretrained`),
    so a key it would not accept fails here, at export, rather than as a warning in someone else's
    `from_pretrained`; the directory then loads into that class with no missing and no unexpected keys.

    Pretraining checkpoints export as BertForPreTraining (MLM + NSP) by default, or with `arch="masked-lm"` as
    BertForMaskedLM, which has neither pooler nor NSP head: that is the class `pipeline("fill-mask")` builds, and
    it would report those tensors as unexpected. An MLM-only checkpoint ("mlm") has no NSP head and exports as
    BertForMaskedLM. Classification maps to BertForSequenceClassification (labels into id2label/label2id), NER
    to BertForTokenClassification (its BIO tags likewise), span QA to BertForQuestionAnswering. Generative QA has a Transformer decoder no transformers BERT class holds.

    A pruned checkpoint (`bert2 prune`, config.json pruned_heads) exports at full size with its removed heads
    zeroed (`expand_pruned_heads`): an exact equivalent, since transformers 5 has no prune_heads; a warning says so.
    """
    p = resolve(checkpoint)
    model_cfg, config = read_config(p)
    meta = config.get("bert2") or {}
    task = str(meta.get("task", "mlm+nsp"))
    try:
        task_cls = registry.get(task)
    except registry.UnknownTask as exc:
        raise CheckpointError(f"{p}: {exc}") from None
    problem = task_cls.export_problem(meta)
    if problem:
        raise CheckpointError(f"{p} cannot be exported: {problem}")
    if model_cfg.norm_placement != "post":
        raise CheckpointError(
            f'{p} uses pre-LN layers (model.norm_placement = "pre"); transformers\' BERT is '
            "post-LN, so these weights have no transformers equivalent and cannot be exported"
        )
    if model_cfg.feed_forward != "mlp":
        raise CheckpointError(
            f'{p} has gated feed-forward layers (model.feed_forward = "glu"); transformers\' BERT has none, '
            "so these weights have no transformers equivalent and cannot be exported"
        )
    if arch is not None and arch not in EXPORT_ARCHS:
        raise CheckpointError(f"unknown --arch {arch!r}; choose {' or '.join(EXPORT_ARCHS)}")
    if arch is not None and task_cls.kind != "pretrain":
        raise CheckpointError(
            f"--arch applies to pretraining checkpoints; {p} is a {task} checkpoint and exports "
            f"as {task_cls.export_class}"
        )
    tokenizer = read_tokenizer(p, model_cfg.vocab_size)
    state = read_weights(p)
    if model_cfg.pruned_heads:  # bert2 prune removed heads: back to full size, the removed ones zero (exact)
        state = expand_pruned_heads(state, model_cfg)

    cls_name = EXPORT_ARCHS[arch] if arch else task_cls.export_class
    if cls_name == "BertForPreTraining" and "nsp.weight" not in state:
        raise CheckpointError(
            f"{p} was pretrained without next-sentence prediction, so BertForPreTraining would "
            "lack its NSP head; export it with --arch masked-lm"
        )
    try:
        hf_state = to_hf_state_dict(state)
    except KeyError as exc:
        raise CheckpointError(f"{p}: {exc.args[0]}; it is not a {task} checkpoint bert2 can export") from None
    if cls_name == "BertForMaskedLM":  # no pooler, no NSP head in that class
        hf_state = {k: v for k, v in hf_state.items() if not k.startswith(("bert.pooler.", "cls.seq_relationship."))}

    alibi = model_cfg.position_embedding_type == "alibi"
    hf_dict = hf_config_dict(model_cfg)
    hf_dict.pop("position_embedding_type", None)  # the learned table is used either way; ALiBi is `alibi` below
    hf_dict.pop("pruned_heads", None)  # the export is full size (zero heads), so nothing is pruned for transformers
    hf_dict.update(
        architectures=[cls_name],
        pad_token_id=int(tokenizer.pad_token_id),
        bert2_export={"checkpoint": portable_name(p), "task": task, "step": int(read_state(p).get("step", 0))},
    )
    if model_cfg.pruned_heads:
        hf_dict["bert2_export"]["zeroed_heads"] = model_cfg.pruned_heads
    if task_cls.kind == "finetune" and task_cls.labelled:  # label names into transformers' id2label
        labels = [str(x) for x in meta.get("labels") or []]
        n = int(state["classifier.weight"].shape[0])
        if len(labels) != n:
            labels = [f"LABEL_{i}" for i in range(n)]
        hf_dict.update(
            id2label={str(i): name for i, name in enumerate(labels)},
            label2id={name: i for i, name in enumerate(labels)},
            classifier_dropout=meta.get("classifier_dropout"),
        )
        if task_cls.export_class == "BertForSequenceClassification":
            hf_dict.update(problem_type="single_label_classification")
    if alibi:  # transformers' BERT plus the modelling code shipped beside the weights (trust_remote_code)
        cls_name = REMOTE_CLASSES[cls_name]
        config = Bert2AlibiConfig(**hf_dict, auto_map=REMOTE_AUTO_MAP)
        config.architectures = [cls_name]
        hf_model = getattr(remote_modeling, cls_name)(config).eval()
    else:
        hf_model = getattr(transformers, cls_name)(transformers.BertConfig(**hf_dict)).eval()
    missing, unexpected = hf_model.load_state_dict(hf_state, strict=False)
    if missing or unexpected:  # a bug or a checkpoint with surprising contents: never write a half-model
        raise CheckpointError(
            f"{p} does not map onto {cls_name}: missing {sorted(missing)[:4]}, unexpected {sorted(unexpected)[:4]}"
        )

    # So the fill-mask pipeline and friends truncate to what the position table can read (a freshly loaded
    # tokenizer: nothing else sees the change).
    tokenizer.model_max_length = model_cfg.max_position_embeddings

    def payload(directory: Path) -> None:
        bars = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()  # "Writing model shards" bars would clutter the CLI
        try:
            hf_model.save_pretrained(str(directory), safe_serialization=True)
        finally:
            if bars:
                hf_logging.enable_progress_bar()
        save_tokenizer(tokenizer, directory)
        if alibi:
            for name in REMOTE_FILES:
                shutil.copyfile(Path(remote_modeling.__file__).with_name(name), directory / name)
        (directory / "README.md").write_text(
            model_card(p, task, cls_name, model_cfg, config_meta=meta, state=read_state(p), remote_code=alibi),
            encoding="utf-8",
        )

    path = write_directory(out_dir, payload, force, protect=(p,))
    warnings: list[str] = []
    if model_cfg.pruned_heads:
        removed = sum(len(v) for v in model_cfg.pruned_heads.values())
        warnings.append(
            f"{p} has {removed} pruned attention head(s) ({model_cfg.pruned_heads}); transformers 5 "
            "cannot prune, so they were re-expanded as zero query/key/value rows and zero "
            "out-projection columns: the same outputs exactly, at the unpruned size and speed "
            "(config.json bert2_export.zeroed_heads lists them)"
        )
    if cls_name == "BertForMaskedLM" and "nsp.weight" in state:
        warnings.append("exported as BertForMaskedLM: the pooler and the NSP head were left out")
    return ExportResult(path, p, task, cls_name, warnings)
