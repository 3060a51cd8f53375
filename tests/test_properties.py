"""Property-based: random config values and random unicode text never escape as anything but bert2's own errors."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bert2.config import SECTIONS, Config, ConfigError, field_types
from bert2.errors import Bert2Error

KEYS = [(s, k) for s, cls in SECTIONS.items() for k in field_types(cls)]
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(KEYS + [("model", "nope"), ("nope", "x")]), values), max_size=6))
def test_from_dict_only_raises_config_error(items):
    data: dict = {}
    for (section, key), value in items:
        data.setdefault(section, {})[key] = value
    try:
        cfg = Config.from_dict(data)
    except ConfigError as exc:
        assert exc.errors and all(e.key and e.message for e in exc.errors)
    else:
        assert cfg.validate() == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=40), max_size=4))
def test_overrides_only_raise_config_error(overrides):
    try:
        Config().with_overrides(overrides)
    except ConfigError:
        pass


@pytest.fixture(scope="module")
def predictor(tiny_pretrain_checkpoint):
    from bert2.inference import Predictor

    return Predictor.load(tiny_pretrain_checkpoint)


texts = st.one_of(
    st.text(max_size=200),
    st.text(max_size=80).map(lambda t: t + " [MASK] " + t),
    st.just("[MASK]" * 5),
    st.just("[MASK] " * 200),
    st.text(alphabet="\u0000\ud7ff\ufffd\u200b\t\n ", max_size=20),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts, st.integers(min_value=-3, max_value=50))
def test_fill_mask_only_raises_bert2_errors(predictor, text, top_k):
    try:
        out = predictor.fill_mask(text, top_k=top_k)
    except Bert2Error as exc:
        assert str(exc)
    else:
        assert out and all(len(per_mask) == min(top_k, len(predictor.tokenizer)) for per_mask in out)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(max_size=200))
def test_attentions_and_tokenizer_only_raise_bert2_errors(predictor, text):
    enc = predictor.tokenizer(text)  # the tokenizer itself accepts any unicode
    assert enc["input_ids"][0] == predictor.tokenizer.cls_token_id
    try:
        tokens, maps = predictor.attentions(text)
    except Bert2Error:
        pass
    else:
        assert maps.shape[-1] == len(tokens)
