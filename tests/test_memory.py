"""Memory estimate: parameters counted from the config equal the built model's; a run that cannot fit is refused
before any data is prepared (CLI exit 2, and an error beside the field on the Config screen)."""

from __future__ import annotations

import json

import pytest

from bert2 import memory
from bert2.cli import main
from bert2.config import Config, ModelConfig
from bert2.model import BertForPreTraining, count_parameters
from bert2_tui.testing import make_app, widget_text

HUGE = [
    "model.hidden_size=16384",
    "model.num_hidden_layers=24",
    "model.intermediate_size=65536",
    "model.num_attention_heads=16",
]


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"norm_placement": "pre"},
        {"feed_forward": "glu", "intermediate_size": 340},
        {"position_embedding_type": "absolute"},
        {
            "vocab_size": 300,
            "hidden_size": 32,
            "num_hidden_layers": 3,
            "intermediate_size": 48,
            "num_attention_heads": 2,
            "max_position_embeddings": 64,
        },
    ],
)
@pytest.mark.parametrize("nsp", [True, False])
def test_parameter_count_matches_the_model(kw, nsp):
    m = ModelConfig(**kw)
    assert memory.count_parameters(m, nsp=nsp) == count_parameters(BertForPreTraining(m, nsp=nsp))


def test_huge_model_is_refused_naming_the_field():
    cfg = Config().with_overrides(HUGE)
    est = memory.estimate(cfg, available=24 * 2**30)
    assert est.parameters > 70e9 and est.total_bytes > 100 * 2**30 and not est.fits
    errors = memory.memory_errors(cfg, available=24 * 2**30)
    assert [e.key for e in errors] == ["model.hidden_size"] and "cannot fit" in errors[0].message
    assert memory.memory_errors(Config(), available=24 * 2**30) == []
    assert memory.memory_errors(cfg, available=None) == []  # unknown free memory: never refuse on a guess


def test_activation_bound_run_names_the_batch_size():
    cfg = Config().with_overrides(["pretrain.batch_size=65536"])
    errors = memory.memory_errors(cfg, available=8 * 2**30)
    assert [e.key for e in errors] == ["pretrain.batch_size"]


def test_cli_refuses_before_preparing_data(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 24 * 2**30)
    cache = tmp_path / "cache"
    sets = [
        a
        for kv in HUGE
        + [f"data.cache_dir={json.dumps(str(cache))}", f"paths.root={json.dumps(str(tmp_path / 'saved'))}"]
        for a in ("--set", kv)
    ]
    assert main(["pretrain", *sets]) == 2
    err = capsys.readouterr().err
    assert "model.hidden_size: this run cannot fit" in err and "GB" in err and "Traceback" not in err
    assert not cache.exists()  # nothing prepared, nothing written


async def test_config_screen_shows_the_estimate_and_the_error(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 24 * 2**30)
    app = make_app(Config().with_overrides([f"paths.root={json.dumps(str(tmp_path))}"]), load_history=False)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.press("1")
        screen = app.screen
        screen.mount_all_sections()
        await pilot.pause()
        assert "M parameters; training needs" in widget_text(screen.query_one("#config-status"))
        values = Config().with_overrides(HUGE).to_dict()
        screen.set_values(values)
        assert "cannot fit" in screen.error_text("model.hidden_size")
        assert app.config.model.hidden_size == Config().model.hidden_size  # the last valid config stays
