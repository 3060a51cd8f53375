"""The train_throughput profile: a per-op table whose shares add up and whose families name the matmuls."""

from bert2.bench import _op_family, profile_step
from bert2.config import ModelConfig


def test_profile_step_accounts_for_the_step():
    cfg = ModelConfig(vocab_size=500, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    r = profile_step(cfg, batch=4, seq=16, precision="fp32", steps=2, top=5)
    shares = sum(f["share"] for f in r["families"].values())
    assert abs(shares - 1.0) < 0.01
    assert "matmul" in r["families"] and r["families"]["matmul"]["ms"] > 0
    assert len(r["ops"]) == 5 and r["ops"][0]["ms"] >= r["ops"][-1]["ms"]
    assert r["ms_per_step_profiled"] > 0


def test_op_families():
    assert _op_family("aten::addmm") == "matmul"
    assert _op_family("aten::_fused_adamw_") == "optimizer"
    assert _op_family("Optimizer.step#AdamW.step") == "optimizer"
    assert _op_family("aten::_scaled_dot_product_flash_attention_for_cpu") == "attention"
    assert _op_family("aten::native_layer_norm") == "layernorm/gelu/dropout"
