"""Chat templates: the one place that decides how a dialogue becomes text and token ids.

The same template renders training records (`encode_turns`: per turn the prompt ids and the
response ids, so the loss mask can tell them apart) and generation prompts (`render_prompt` as
text, `encode_prompt` as ids that match training exactly). Built-in templates follow the formats
of the models they are named after; 'tokenizer' uses the tokenizer's own jinja `chat_template`.
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

# Markers in a template's parts: replaced by the tokenizer's BOS id, or the end-of-turn id.
BOS = "{bos}"
STOP = "{stop}"


@dataclasses.dataclass(frozen=True)
class ChatTemplate:
    name: str
    user: str = "{content}"            # the user turn and the opening of the assistant turn
    assistant: str = "{content}"       # the response (trained), followed by the stop token
    system: str = "{content}"          # the system message, rendered before the first user turn
    default_system: str = ""
    prefix: tuple[str, ...] = (BOS,)   # parts at the very start (BOS or special token names)
    separator: str = ""                # text that opens each later turn, after the stop token
    bos_each_turn: bool = False        # llama2 opens every turn with BOS
    system_in_user: bool = False       # llama2 puts the system block inside the first [INST]
    stop: str | None = None            # end-of-turn token; None: the tokenizer's EOS
    stop_words: tuple[str, ...] = ()   # extra strings that end generation
    # GLM v1 (ChatGLM-6B): earlier turns are folded into one prompt and only the last answer is a
    # response; the prompt closes with `generation_suffix` ([gMASK] <sop>: the blank and the start
    # of its span), and a single-turn dialogue uses `user_single` instead of `user`.
    history_in_prompt: bool = False
    user_single: str | None = None
    generation_suffix: tuple[str, ...] = ()
    # Baichuan2: a special token opens every user turn, after the system text (which then stands alone)
    user_token: str | None = None
    # Text rendering only: SentencePiece already starts a separately encoded response with a
    # word boundary, so ids need no space; the text form needs it to read (and tokenize) right.
    text_response_lead: str = ""

    def user_text(self, content: str, index: int, single: bool = False) -> str:
        form = self.user_single if single and self.user_single is not None else self.user
        return form.replace("{content}", content).replace("{idx}", str(index + 1)).replace("{idx0}", str(index))

    def is_special(self, part: str) -> bool:
        """Parts that are one special token when the tokenizer has it (else plain text)."""
        return part in self.prefix or part in self.generation_suffix or part == self.user_token


_DEFAULT_SYSTEM = ("A chat between a curious user and an artificial intelligence assistant. The "
                   "assistant gives helpful, detailed, and polite answers to the user's questions.")

TEMPLATES = {t.name: t for t in (
    ChatTemplate("llama2", user="[INST] {content} [/INST]", system="<<SYS>>\n{content}\n<</SYS>>\n\n",
                 prefix=(), bos_each_turn=True, system_in_user=True, text_response_lead=" "),
    # Mistral Instruct: one BOS for the dialogue, no system role (its text opens the first [INST])
    ChatTemplate("mistral", user="[INST] {content} [/INST]", system="{content}\n\n", system_in_user=True,
                 text_response_lead=" "),
    ChatTemplate("llama3",
                 user="<|start_header_id|>user<|end_header_id|>\n\n{content}<|eot_id|>"
                      "<|start_header_id|>assistant<|end_header_id|>\n\n",
                 system="<|start_header_id|>system<|end_header_id|>\n\n{content}<|eot_id|>",
                 stop="<|eot_id|>"),
    ChatTemplate("chatml", user="<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n",
                 system="<|im_start|>system\n{content}<|im_end|>\n", separator="\n", stop="<|im_end|>"),
    # Qwen2.5's own chat_template: ChatML, with this system message when the dialogue brings none
    ChatTemplate("qwen2", user="<|im_start|>user\n{content}<|im_end|>\n<|im_start|>assistant\n",
                 system="<|im_start|>system\n{content}<|im_end|>\n", separator="\n", stop="<|im_end|>",
                 default_system="You are Qwen, created by Alibaba Cloud. You are a helpful assistant."),
    ChatTemplate("chatglm", user="[Round {idx0}]\n问：{content}\n答：", user_single="{content}",
                 system="{content}\n", prefix=(), separator="\n", history_in_prompt=True,
                 generation_suffix=("[gMASK]", "<sop>")),
    ChatTemplate("chatglm2", user="[Round {idx}]\n\n问：{content}\n\n答：", system="{content}\n\n",
                 prefix=("[gMASK]", "sop"), separator="\n\n"),
    ChatTemplate("chatglm3", user="<|user|>\n{content}<|assistant|>", assistant="\n{content}",
                 system="<|system|>\n{content}", prefix=("[gMASK]", "sop"),
                 stop_words=("<|user|>", "<|observation|>")),
    ChatTemplate("glm4", user="<|user|>\n{content}<|assistant|>", assistant="\n{content}",
                 system="<|system|>\n{content}", prefix=("[gMASK]<sop>",),
                 stop_words=("<|user|>", "<|observation|>")),
    ChatTemplate("alpaca", user="### Instruction:\n{content}\n\n### Response:\n", system="{content}\n\n",
                 default_system="Below is an instruction that describes a task. Write a response that "
                                "appropriately completes the request.", separator="\n\n"),
    ChatTemplate("vicuna", user="USER: {content} ASSISTANT:", system="{content} ",
                 default_system=_DEFAULT_SYSTEM, text_response_lead=" "),
    # Baichuan2 / Baichuan-13B-Chat: no BOS; <reserved_106> (id 195) opens a user turn and
    # <reserved_107> (196) the answer, which ends with EOS; the system text comes first, bare
    ChatTemplate("baichuan2", prefix=(), user_token="<reserved_106>", generation_suffix=("<reserved_107>",)),
    ChatTemplate("tokenizer"),  # the tokenizer's jinja chat_template; resolved at render time
    ChatTemplate("plain"),  # BOS + the user text, the response, EOS: prompts as medjax.eval scores them
)}

# Model family -> template when the tokenizer brings none of its own.
FAMILY_TEMPLATES = {"llama": "llama2", "llama2": "llama2", "llama3": "llama3", "mistral": "mistral",
                    "glm": "chatglm3", "glm_v1": "chatglm",
                    "chatglm": "chatglm3", "chatglm2": "chatglm2", "chatglm3": "chatglm3",
                    "glm4": "glm4", "qwen": "chatml", "qwen2": "qwen2", "baichuan": "baichuan2"}


def get_template(name: str | ChatTemplate) -> ChatTemplate:
    if isinstance(name, ChatTemplate):
        return name
    if name not in TEMPLATES:
        raise KeyError(f"unknown chat template {name!r}; known: {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def default_template(tokenizer=None, model_family: str | None = None) -> ChatTemplate:
    """The tokenizer's own template when it has one, else the model family's, else chatml."""
    if tokenizer is not None and tokenizer.chat_template:
        return TEMPLATES["tokenizer"]
    return TEMPLATES[FAMILY_TEMPLATES.get((model_family or "").lower(), "chatml")]


# -- text ------------------------------------------------------------------------------------
def render_prompt(messages: Sequence[dict], template: str | ChatTemplate, tokenizer=None,
                  system: str | None = None) -> str:
    """The generation prompt as text: the dialogue so far with the assistant turn opened.

    `messages` ends with a user turn. BOS is left out for built-in templates (a SentencePiece model
    would spell "<s>" out as text), so callers put `tokenizer.bos_id` first themselves;
    `encode_prompt` gives the exact ids training used, BOS included.
    """
    template = get_template(template)
    if template.name == "tokenizer":
        return _jinja(tokenizer, _with_system(messages, template, system), generation=True)
    text = []
    for prompt, response in _turn_parts(_with_system(messages, template, system), template):
        text += [p for p in prompt if p != BOS]
        if response is not None:
            text.append(template.text_response_lead + response[0])
            text += [template.stop] if template.stop else []
    return "".join(text)


# -- ids -------------------------------------------------------------------------------------
def encode_turns(messages: Sequence[dict], template: str | ChatTemplate, tokenizer,
                 system: str | None = None) -> list[tuple[list[int], list[int]]]:
    """Per assistant turn: (prompt ids, response ids incl. the end-of-turn token)."""
    template = get_template(template)
    messages = _with_system(messages, template, system)
    if template.name == "tokenizer":
        return _jinja_turns(messages, tokenizer)
    stop_id = _stop_id(template, tokenizer)
    turns = []
    for prompt, response in _turn_parts(messages, template):
        if response is None:
            raise ValueError("encode_turns needs a dialogue that ends with an assistant turn")
        turns.append((_encode_parts(prompt, template, tokenizer, stop_id),
                      _encode_parts(response, template, tokenizer, stop_id)))
    return turns


def encode_prompt(messages: Sequence[dict], template: str | ChatTemplate, tokenizer,
                  system: str | None = None) -> list[int]:
    """Ids of the generation prompt, token for token what training put before a response."""
    template = get_template(template)
    messages = _with_system(messages, template, system)
    if template.name == "tokenizer":
        return tokenizer.encode(_jinja(tokenizer, messages, generation=True))
    stop_id = _stop_id(template, tokenizer)
    ids = []
    for prompt, response in _turn_parts(messages, template):
        ids += _encode_parts(prompt, template, tokenizer, stop_id)
        if response is not None:
            ids += _encode_parts(response, template, tokenizer, stop_id)
    return ids


def stop_ids(template: str | ChatTemplate, tokenizer) -> list[int]:
    """Token ids that end a generated answer under this template."""
    template = get_template(template)
    ids = {i for i in (tokenizer.eos_id, _stop_id(template, tokenizer)) if i is not None}
    for word in template.stop_words:
        i = tokenizer.token_to_id(word)
        if i is not None:
            ids.add(i)
    return sorted(ids)


# -- internals -------------------------------------------------------------------------------
def _with_system(messages: Sequence[dict], template: ChatTemplate, system: str | None) -> list[dict]:
    messages = list(messages)
    if messages and messages[0]["role"] == "system":
        return messages
    system = system if system is not None else template.default_system
    return ([{"role": "system", "content": system}] if system else []) + messages


def _turn_parts(messages: list[dict], template: ChatTemplate):
    """Yields (prompt parts, response parts or None) per user turn; parts are text or markers."""
    system = ""
    if messages and messages[0]["role"] == "system":
        system = template.system.replace("{content}", messages[0]["content"])
        messages = messages[1:]
    if template.history_in_prompt:
        yield from _folded_turn(messages, template, system)
        return
    for i in range(0, len(messages), 2):
        turn = i // 2
        prompt = [BOS] if template.bos_each_turn else []
        if turn == 0:
            prompt = list(template.prefix) + prompt
        elif template.separator:
            prompt.append(template.separator)
        user = template.user_text(messages[i]["content"], turn)
        if turn == 0 and system and template.user_token:
            prompt.append(system)  # before the token that opens the user turn
        elif turn == 0 and system:
            user = (template.user_text(system + messages[i]["content"], turn) if template.system_in_user
                    else system + user)
        if template.user_token:
            prompt.append(template.user_token)
        prompt.append(user)
        prompt += list(template.generation_suffix)
        response = None
        if i + 1 < len(messages):
            response = [template.assistant.replace("{content}", messages[i + 1]["content"]), STOP]
        yield prompt, response


def _folded_turn(messages: list[dict], template: ChatTemplate, system: str):
    """One prompt holding every earlier turn as text, then the last answer as the response."""
    last_user = len(messages) - 1 if messages[-1]["role"] == "user" else len(messages) - 2
    single = last_user == 0
    text = system
    for i in range(0, last_user, 2):
        text += (template.user_text(messages[i]["content"], i // 2)
                 + template.assistant.replace("{content}", messages[i + 1]["content"]) + template.separator)
    text += template.user_text(messages[last_user]["content"], last_user // 2, single=single)
    prompt = list(template.prefix) + [text] + list(template.generation_suffix)
    response = None
    if last_user + 1 < len(messages):
        response = [template.assistant.replace("{content}", messages[last_user + 1]["content"]), STOP]
    yield prompt, response


def _stop_id(template: ChatTemplate, tokenizer) -> int | None:
    if template.stop:
        i = tokenizer.token_to_id(template.stop)
        if i is not None:
            return i
    return tokenizer.eos_id


def _encode_parts(parts: list[str], template: ChatTemplate, tokenizer, stop_id: int | None) -> list[int]:
    ids, text = [], ""
    for part in parts:
        special = None
        if part == BOS:
            special = [tokenizer.bos_id] if tokenizer.bos_id is not None else []
        elif part == STOP:
            special = [stop_id] if stop_id is not None else []
        elif template.is_special(part):  # special tokens such as [gMASK]: one id when the vocab has it
            i = tokenizer.token_to_id(part)
            special = [i] if i is not None else None
        if special is None:
            text += part
            continue
        if text:
            ids += tokenizer.encode(text)
            text = ""
        ids += special
    if text:
        ids += tokenizer.encode(text)
    return ids


def _hf(tokenizer):
    hf = getattr(tokenizer, "hf", None)
    if hf is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError("template 'tokenizer' needs a transformers tokenizer with a chat_template; "
                         "set data.template to one of " + ", ".join(n for n in TEMPLATES if n != "tokenizer"))
    return hf


def _jinja(tokenizer, messages: list[dict], generation: bool) -> str:
    return _hf(tokenizer).apply_chat_template(list(messages), tokenize=False,
                                              add_generation_prompt=generation)


def _jinja_turns(messages: list[dict], tokenizer) -> list[tuple[list[int], list[int]]]:
    """Splits the jinja rendering at each assistant turn by rendering growing prefixes."""
    turns, done = [], ""
    for j, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        opened = _jinja(tokenizer, messages[:j], generation=True)
        closed = _jinja(tokenizer, messages[:j + 1], generation=False)
        if not (opened.startswith(done) and closed.startswith(opened)):
            raise ValueError("the tokenizer's chat_template does not render dialogues as growing "
                             "prefixes, so prompts and responses cannot be told apart; choose a "
                             "built-in data.template instead")
        response = tokenizer.encode(closed[len(opened):])
        if tokenizer.eos_id is not None and tokenizer.eos_id not in response:
            response.append(tokenizer.eos_id)
        turns.append((tokenizer.encode(opened[len(done):]), response))
        done = closed
    return turns
