"""DPO pairs are tokenized by DPOTrainer's own preparation wherever the app counts or scores them (the Data
preview's lengths, the held-out preference evaluation), so what is shown and scored is what training saw."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from playground.data.preference import pair_ids, pair_lengths


@pytest.fixture(scope="module")
def tok(smol_tokenizer_dir):
    return AutoTokenizer.from_pretrained(smol_tokenizer_dir)


def test_plain_text_pairs_are_tokenized_whole_with_eos_like_dpo_training(tok):
    # "wor" + "ld" merge across the boundary: tokenizing prompt and answer apart (the app's old way) gave the
    # answer tokens training never saw; DPO tokenizes prompt + answer + EOS together
    rows = [{"prompt": "Hello wor", "chosen": "ld, friend.", "rejected": " there."}]
    ((p, c, r),) = pair_ids(rows, tok)
    assert p + c == tok("Hello world, friend." + tok.eos_token)["input_ids"]
    assert p + r == tok("Hello wor there." + tok.eos_token)["input_ids"]
    assert c[-1] == r[-1] == tok.eos_token_id
    apart = tok("Hello wor")["input_ids"] + tok("ld, friend.", add_special_tokens=False)["input_ids"]
    assert apart != p + c  # the case the hand-written tokenization got wrong
    assert len(p) < len(tok("Hello wor")["input_ids"])  # the answer starts where the two diverge


def test_chat_pairs_take_the_template_and_answers_start_after_the_generation_prompt(tok):
    user = [{"role": "user", "content": "Say hi."}]
    rows = [{"prompt": user, "chosen": [{"role": "assistant", "content": "Hi! Hope this helps!"}],
             "rejected": [{"role": "assistant", "content": "Hi."}]}] * 2
    ids = pair_ids(rows, tok)
    assert len(ids) == 2 and ids[0] == ids[1]
    p, c, r = ids[0]
    assert p == tok.apply_chat_template(user, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
    full = tok.apply_chat_template(user + rows[0]["chosen"], tokenize=True, return_dict=True)["input_ids"]
    assert p + c == full and "Hope this helps!" in tok.decode(c) and "assistant" not in tok.decode(c)
    assert pair_lengths(__import__("datasets").Dataset.from_list(rows), tok) == ([len(p)] * 2, [len(c)] * 2)
    assert pair_ids([], tok) == []



def test_pairs_dpo_could_not_tokenize_are_a_sentence_not_a_library_error(tok):
    from types import SimpleNamespace

    chat = [{"prompt": [{"role": "user", "content": "hi"}], "chosen": [{"role": "assistant", "content": "a"}],
             "rejected": [{"role": "assistant", "content": "b"}]}]
    with pytest.raises(ValueError, match="^These pairs are conversations .* this model has no chat template"):
        pair_ids(chat, SimpleNamespace(chat_template=None, eos_token="</s>"))
    with pytest.raises(ValueError, match="^This model's tokenizer has no end-of-text token"):
        pair_ids([{"prompt": "p", "chosen": " a", "rejected": " b"}], SimpleNamespace(chat_template=None,
                                                                                     eos_token=None))
