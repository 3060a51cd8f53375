"""Configuration: defaults valid, field-level errors, TOML round trip, overrides, presets, the six directories."""

import pytest

from bert2.config import (
    KINDS,
    PRESETS,
    STAGES,
    Config,
    ConfigError,
    DataConfig,
    FinetuneConfig,
    ModelConfig,
    PathsConfig,
    PretrainConfig,
    field_docs,
    load_config,
    preset,
)


def keys(errors):
    return {e.key for e in errors}


def test_defaults_and_presets_are_valid():
    assert Config().validate() == []
    for name in PRESETS:
        assert preset(name).validate() == [], name
    tiny = preset("tiny").model
    assert (tiny.num_hidden_layers, tiny.hidden_size, tiny.num_attention_heads, tiny.intermediate_size) == (
        2,
        128,
        8,
        512,
    )
    base = preset("base")
    assert (base.model.num_hidden_layers, base.model.hidden_size, base.model.vocab_size) == (12, 768, 30522)
    assert base.data.max_seq_length == 512


def test_every_field_has_a_docstring():
    for cls in (ModelConfig, DataConfig, PretrainConfig, FinetuneConfig, PathsConfig):
        docs = field_docs(cls)
        missing = [f for f in cls.__dataclass_fields__ if not docs.get(f)]
        assert not missing, (cls.__name__, missing)


@pytest.mark.parametrize(
    "override,key,fragment",
    [
        ("model.hidden_size=100", "model.hidden_size", "divisible"),
        ("data.mlm_probability=1.5", "data.mlm_probability", "[0, 1]"),
        ("pretrain.learning_rate=-1", "pretrain.learning_rate", "> 0"),
        ("pretrain.batch_size=0", "pretrain.batch_size", "> 0"),
        ("data.max_seq_length=1024", "data.max_seq_length", "max_position_embeddings"),
        ("model.foo=1", "model.foo", "unknown key"),
        ("nosuch.key=1", "nosuch", "unknown section"),
        ("pretrain.batch_size=abc", "pretrain.batch_size", "integer"),
        ("pretrain.batch_size=3.5", "pretrain.batch_size", "integer"),
        ("data.nsp=maybe", "data.nsp", "true or false"),
        ("pretrain.scheduler=step", "pretrain.scheduler", "linear, cosine, constant"),
        ("model.vocab_size=5", "model.vocab_size", "implausibly small"),
        ("pretrain.keep_last=0", "pretrain.keep_last", ">= 1"),
        ("runtime.device=tpu", "runtime.device", "auto"),
        ("pretrain.learning_rate=nan", "pretrain.learning_rate", "finite"),
    ],
)
def test_field_errors_name_the_field(override, key, fragment):
    with pytest.raises(ConfigError) as info:
        Config().with_overrides([override])
    assert key in keys(info.value.errors)
    assert any(fragment in e.message for e in info.value.errors if e.key == key), info.value.errors


def test_overrides_parse_types():
    cfg = Config().with_overrides(
        [
            "pretrain.max_steps=7",
            "pretrain.learning_rate=2e-4",
            "data.nsp=false",
            "data.corpus=my file.txt",
            "paths.root=/tmp/x",
        ]
    )
    assert cfg.pretrain.max_steps == 7 and cfg.pretrain.learning_rate == 2e-4
    assert cfg.data.nsp is False and cfg.data.corpus == "my file.txt" and cfg.paths.root == "/tmp/x"


def test_toml_round_trip(tmp_path):
    cfg = preset("mini").with_overrides(["pretrain.max_steps=123", "data.corpus=corpus.txt"])
    path = cfg.save(tmp_path / "bert2.toml")
    again = load_config(path)
    assert again.to_dict() == cfg.to_dict()
    assert load_config(path, ["pretrain.max_steps=5"]).pretrain.max_steps == 5


@pytest.mark.parametrize(
    "text,fragment",
    [
        ("[model]\nhidden_size = 'big'\n", "model.hidden_size: must be an integer"),
        ("[model]\nwidth = 3\n", "model.width: unknown key"),
        ("[model\n", "not valid TOML"),
        ("model = 3\n", "must be a table"),
    ],
)
def test_bad_files_are_reported(tmp_path, text, fragment):
    f = tmp_path / "c.toml"
    f.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(f)
    assert fragment in str(info.value)


def test_missing_and_binary_config_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")
    f = tmp_path / "bin.toml"
    f.write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(f)


def test_six_directories_created_on_first_use(tmp_path):
    cfg = Config().with_overrides([f"paths.root={tmp_path / 'saved_model'}"])
    root = tmp_path / "saved_model"
    assert not root.exists()
    dirs = cfg.all_stage_dirs()
    assert len(dirs) == 6
    expected = {root / "transformer/pretrain" / s for s in STAGES} | {root / "bert/finetuning" / s for s in STAGES}
    assert set(dirs.values()) == expected
    assert all(p.is_dir() for p in expected)
    assert set(KINDS) == {"pretrain", "finetune"}


def test_machine_settings_of_an_older_file_are_read_from_their_old_place_with_a_note(tmp_path):
    old = tmp_path / "old.toml"
    old.write_text(
        '[pretrain]\ndevice = "cpu"\nnum_threads = 2\nprecision = "bf16"\nmax_steps = 7\n'
        '[finetune]\nprecision = "bf16"\n'
    )
    cfg = load_config(old)
    assert (cfg.runtime.device, cfg.runtime.num_threads, cfg.runtime.precision) == ("cpu", 2, "bf16")
    assert cfg.pretrain.max_steps == 7
    assert any(n.startswith("pretrain.device is now runtime.device") for n in cfg.notes)
    assert any(n.startswith("finetune.precision is now runtime.precision") for n in cfg.notes)
    with pytest.raises(ConfigError) as info:  # a bad value is named by the key it is read as now
        load_config(old, ["pretrain.device=tpu"])
    assert [e.key for e in info.value.errors] == ["runtime.device"]


def test_every_training_section_shares_one_settings_class_with_its_own_defaults():
    from bert2.config import TrainConfig, section_fields

    cfg = Config()
    for section in ("pretrain", "finetune", "distill"):
        assert isinstance(getattr(cfg, section), TrainConfig)
    assert (cfg.pretrain.learning_rate, cfg.finetune.learning_rate, cfg.distill.learning_rate) == (2e-3, 0.0, 2e-3)
    assert (cfg.pretrain.adam_beta2, cfg.finetune.adam_beta2) == (0.98, 0.999)
    names = [f.name for f in section_fields(type(cfg.finetune))]
    assert names[:2] == ["task", "data"] and "batch_size" in names  # its own fields first, then the shared ones
    assert "device" not in names and "device" in [f.name for f in section_fields(type(cfg.runtime))]
