"""synthetic_bpe (the stand-in vocabulary of scripts/bench-models.py): exact size, specials at their ids,
every id decodes, text round-trips; and Florence-2's wrapper around it gives the model's vocabulary size."""
import pytest

from lookout_train.tok import SPECIAL, synthetic_bpe


def test_gpt2_size_and_roundtrip():
    t = synthetic_bpe(50257, back=[SPECIAL])
    assert t.get_vocab_size() == 50257
    assert t.token_to_id(SPECIAL) == 50256
    text = "a red car on the road, caf\u00e9"
    assert t.decode(t.encode(text).ids) == text
    for i in (0, 255, 256, 30000, 50255):
        assert t.id_to_token(i) is not None and isinstance(t.decode([i]), str)


def test_bart_front_specials():
    t = synthetic_bpe(300, front=["<s>", "<pad>", "</s>", "<unk>"])
    assert [t.token_to_id(s) for s in ("<s>", "<pad>", "</s>", "<unk>")] == [0, 1, 2, 3]
    assert t.get_vocab_size() == 300


def test_florence_tokenizer_on_synthetic_base(tmp_path):
    from lookout_train import florence

    base = synthetic_bpe(51289 - len(florence.FLORENCE_TOKENS) - 1, front=["<s>", "<pad>", "</s>", "<unk>"])
    fast = florence.build_tokenizer(str(tmp_path), base)
    assert len(fast) == 51289
    assert fast.convert_ids_to_tokens(fast.convert_tokens_to_ids("<loc_999>")) == "<loc_999>"


def test_too_big():
    with pytest.raises(ValueError, match="cannot be made"):
        synthetic_bpe(300000)
