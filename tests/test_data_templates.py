"""Chat templates and loss masks: responses only by default, train_on_prompt, mask_history, EOS."""
import json
import shutil

import numpy as np
import pytest

from medjax.data import templates
from medjax.data.config import data_config
from medjax.data.encode import EncodeOptions, encode_record
from medjax.data.formats import to_record
from medjax.data.pipeline import build_train_iterator
from test_data_fixtures import LLAMA2_TOKENIZER, SHARED, llama2_tokenizer  # noqa: F401  (fixture)

DIALOGUE = {"conversations": [{"from": "system", "value": "You are a doctor."},
                              {"from": "human", "value": "I have a fever."},
                              {"from": "gpt", "value": "Drink water and rest."},
                              {"from": "human", "value": "For how long?"},
                              {"from": "gpt", "value": "Two days."}]}
BUILT_IN = [n for n in templates.TEMPLATES if n != "tokenizer"]


def _trained_text(doc, tokenizer):
    """The response tokens a document trains on, decoded span by span (EOS kept as a marker)."""
    spans, current = [], []
    for token, trained in zip(doc.ids.tolist(), doc.trained.tolist()):
        if trained:
            current.append(token)
        elif current:
            spans.append(current)
            current = []
    if current:
        spans.append(current)
    return spans


@pytest.mark.parametrize("name", BUILT_IN)
def test_loss_only_on_responses_each_closed_by_the_stop_token(name, llama2_tokenizer):
    tok = llama2_tokenizer
    doc = encode_record(to_record(DIALOGUE, "d:1"), "sft", tok, EncodeOptions(templates.get_template(name)))
    spans = _trained_text(doc, tok)
    folded = templates.get_template(name).history_in_prompt  # GLM v1 trains on the last answer only
    expected = ["Two days."] if folded else ["Drink water and rest.", "Two days."]
    assert [tok.decode(s).strip() for s in spans] == expected
    assert all(s[-1] == tok.eos_id for s in spans), "EOS after each response"
    # The prompt the same template renders for generation is exactly what training put first.
    prompt_ids = templates.encode_prompt(to_record(DIALOGUE, "d:1").messages[:-1], name, tok)
    assert doc.ids[:len(prompt_ids)].tolist() == prompt_ids
    assert doc.trained[len(prompt_ids)] and not doc.trained[len(prompt_ids) - 1]


def test_train_on_prompt_and_mask_history(llama2_tokenizer):
    tok, record = llama2_tokenizer, to_record(DIALOGUE, "d:1")
    template = templates.get_template("llama2")
    everything = encode_record(record, "sft", tok, EncodeOptions(template, train_on_prompt=True))
    assert everything.trained.all()
    last = encode_record(record, "sft", tok, EncodeOptions(template, mask_history=True))
    assert [tok.decode(s).strip() for s in _trained_text(last, tok)] == ["Two days."]


def test_lm_kind_trains_on_every_token_of_a_dialogue(llama2_tokenizer):
    doc = encode_record(to_record(DIALOGUE, "d:1"), "lm", llama2_tokenizer, EncodeOptions(templates.get_template("chatml")))
    assert doc.trained.all()


def test_render_prompt_texts(llama2_tokenizer):
    messages = [{"role": "user", "content": "Is aspirin safe?"}]
    assert templates.render_prompt(messages, "llama2") == "[INST] Is aspirin safe? [/INST]"
    assert templates.render_prompt(messages, "chatml") == (
        "<|im_start|>user\nIs aspirin safe?<|im_end|>\n<|im_start|>assistant\n")
    assert templates.render_prompt(messages, "llama3").endswith(
        "<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert templates.render_prompt(messages, "chatglm2") == "[gMASK]sop[Round 1]\n\n问：Is aspirin safe?\n\n答："
    assert templates.render_prompt(messages, "chatglm3") == "[gMASK]sop<|user|>\nIs aspirin safe?<|assistant|>"
    assert templates.render_prompt(messages, "glm4") == "[gMASK]<sop><|user|>\nIs aspirin safe?<|assistant|>"
    assert templates.render_prompt(messages, "alpaca").endswith("### Instruction:\nIs aspirin safe?\n\n### Response:\n")
    assert templates.render_prompt(messages, "vicuna").endswith("USER: Is aspirin safe? ASSISTANT:")
    system = [{"role": "system", "content": "Be brief."}] + messages
    assert templates.render_prompt(system, "llama2") == (
        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nIs aspirin safe? [/INST]")
    with pytest.raises(KeyError, match="unknown chat template 'llama9'"):
        templates.get_template("llama9")


def test_default_template_from_family_and_tokenizer(llama2_tokenizer):
    assert templates.default_template(llama2_tokenizer, "llama").name == "llama2"
    assert templates.default_template(llama2_tokenizer, "glm4").name == "glm4"
    assert templates.default_template(None, None).name == "chatml"


JINJA = ("{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}<|user|>{{ m['content'] }}\n"
         "{% elif m['role'] == 'assistant' %}<|assistant|>{{ m['content'] }}{{ eos_token }}\n"
         "{% else %}<|system|>{{ m['content'] }}\n{% endif %}{% endfor %}"
         "{% if add_generation_prompt %}<|assistant|>{% endif %}")


@pytest.fixture(scope="module")
def hf_tokenizer_with_template(tmp_path_factory):
    """The LLaMA-2 SentencePiece model as a transformers tokenizer that carries a jinja template."""
    from medjax.data.tokenizer import load_tokenizer

    directory = tmp_path_factory.mktemp("hf_tokenizer")
    shutil.copy(LLAMA2_TOKENIZER, directory / "tokenizer.model")
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "LlamaTokenizer", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}))
    (directory / "chat_template.jinja").write_text(JINJA)
    return load_tokenizer(str(directory))


def test_tokenizer_jinja_template_masks_responses(hf_tokenizer_with_template):
    tok = hf_tokenizer_with_template
    assert templates.default_template(tok, "llama").name == "tokenizer"
    doc = encode_record(to_record(DIALOGUE, "d:1"), "sft", tok, EncodeOptions(templates.get_template("tokenizer")))
    assert doc.ids[0] == tok.bos_id
    spans = _trained_text(doc, tok)
    assert [tok.decode(s).strip() for s in spans] == ["Drink water and rest.", "Two days."]
    assert all(tok.eos_id in s for s in spans)
    prompt = templates.render_prompt([{"role": "user", "content": "hi"}], "tokenizer", tok)
    assert prompt == "<s><|user|>hi\n<|assistant|>"


def test_sft_batches_train_only_on_responses(tmp_path, llama2_tokenizer):
    tok = llama2_tokenizer
    path = tmp_path / "sft.jsonl"
    path.write_text("\n".join(json.dumps(DIALOGUE) for _ in range(4)))
    cfg = data_config(train=str(path), template="chatml", eval_fraction=0.0)
    batch = next(build_train_iterator(cfg, tok, kind="sft", seq_len=128, batch_size=2, seed=0))
    for b in range(2):
        trained = batch["targets"][b][batch["loss_mask"][b] > 0]
        text = tok.decode(trained)
        assert "Drink water and rest." in text and "fever" not in text and "<|im_start|>" not in text
        assert (trained == tok.eos_id).sum() == 2 * len(np.unique(batch["segment_ids"][b][batch["segment_ids"][b] > 0]))


def test_chatglm6b_template_matches_the_original_build_inputs():
    """ChatGLM-6B: history folded into "[Round i]" text, then [gMASK] <sop>; the answer ends with <eop>."""
    import os

    from medjax.data.tokenizer import load_tokenizer

    tok = load_tokenizer(os.path.join(SHARED, "tokenizers", "chatglm6b", "ice_text.model"))
    assert templates.default_template(tok, "glm_v1").name == "chatglm"
    single = [{"role": "user", "content": "你好"}]
    assert templates.encode_prompt(single, "chatglm", tok) == tok.build_inputs(tok.encode("你好"))
    history = single + [{"role": "assistant", "content": "您好！"}, {"role": "user", "content": "发烧怎么办？"}]
    text = "[Round 0]\n问：你好\n答：您好！\n[Round 1]\n问：发烧怎么办？\n答："
    assert templates.render_prompt(history, "chatglm") == text + "[gMASK]<sop>"
    assert templates.encode_prompt(history, "chatglm", tok) == tok.build_inputs(tok.encode(text))
    record = to_record({"messages": history + [{"role": "assistant", "content": "多喝水。"}]}, "m:1")
    doc = encode_record(record, "sft", tok, EncodeOptions(templates.get_template("chatglm")))
    sop = doc.ids.tolist().index(tok.token_to_id("<sop>"))
    assert not doc.trained[:sop + 1].any() and doc.trained[sop + 1:].all()
    assert doc.ids[-1] == tok.eos_id and tok.decode(doc.ids[sop + 1:]) == "多喝水。"
