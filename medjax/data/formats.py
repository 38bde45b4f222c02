"""Record formats (raw text, Alpaca, ShareGPT, OpenAI messages, preference pairs) -> `Record`.

`to_record(row, origin, fmt)` takes one parsed row (a dict) and returns the canonical `Record`;
with fmt='auto' the format is told from the row's keys. Keys outside the format are ignored
(ids, sources, ...), but a row that matches no format is an error listing the keys it has.
"""
from __future__ import annotations

from typing import Any, Callable

from medjax.data.records import DataError, Record

FORMATS = ("text", "alpaca", "sharegpt", "messages", "pref")

# ShareGPT speaker names -> our roles.
_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                   "system": "system", "bot": "assistant", "chatgpt": "assistant"}
_ROLES = ("system", "user", "assistant")


def detect_format(row: dict) -> str | None:
    """The format a row's keys say it is in, or None."""
    keys = set(row)
    if {"chosen", "rejected"} <= keys or {"response_chosen", "response_rejected"} <= keys:
        return "pref"
    if "conversations" in keys:
        return "sharegpt"
    if "messages" in keys:
        return "messages"
    if "instruction" in keys and "output" in keys:
        return "alpaca"
    if "text" in keys:
        return "text"
    return None


def to_record(row: Any, origin: str, fmt: str = "auto") -> Record:
    if not isinstance(row, dict):
        raise DataError(f"{origin}: expected a JSON object per record, got {type(row).__name__}")
    if fmt == "auto":
        fmt = detect_format(row)
        if fmt is None:
            raise DataError(
                f"{origin}: cannot tell the record format; keys found: {sorted(row)}. Expected "
                "'text'; 'instruction'+'output' (Alpaca); 'conversations' (ShareGPT); 'messages'; "
                "or 'chosen'+'rejected' with 'prompt'/'question'/'conversations' (preference pair)")
    elif fmt not in _CONVERTERS:
        raise DataError(f"unknown data format {fmt!r}; expected 'auto' or one of {FORMATS}")
    return _CONVERTERS[fmt](row, origin)


def _field(row: dict, key: str, origin: str, required: bool = True) -> Any:
    if key not in row or row[key] is None:
        if required:
            raise DataError(f"{origin}: missing key {key!r}; keys found: {sorted(row)}")
        return None
    return row[key]


def _text(value: Any, what: str, origin: str) -> str:
    if not isinstance(value, str):
        raise DataError(f"{origin}: {what} must be a string, got {type(value).__name__}")
    return value


def _from_text(row: dict, origin: str) -> Record:
    return Record(origin=origin, text=_text(_field(row, "text", origin), "'text'", origin))


def _system(row: dict, origin: str) -> list[dict]:
    system = row.get("system")
    if system in (None, ""):
        return []
    return [{"role": "system", "content": _text(system, "'system'", origin)}]


def _from_alpaca(row: dict, origin: str) -> Record:
    messages = _system(row, origin)
    for i, turn in enumerate(row.get("history") or []):
        if not (isinstance(turn, (list, tuple)) and len(turn) == 2):
            raise DataError(f"{origin}: 'history'[{i}] must be a [question, answer] pair")
        messages += [{"role": "user", "content": _text(turn[0], f"'history'[{i}][0]", origin)},
                     {"role": "assistant", "content": _text(turn[1], f"'history'[{i}][1]", origin)}]
    messages.append({"role": "user", "content": _alpaca_prompt(row, origin)})
    messages.append({"role": "assistant",
                     "content": _text(_field(row, "output", origin), "'output'", origin)})
    return Record(origin=origin, messages=_checked(messages, origin, ends_with="assistant"))


def _alpaca_prompt(row: dict, origin: str) -> str:
    instruction = _text(_field(row, "instruction", origin), "'instruction'", origin)
    extra = row.get("input")
    if extra:
        return instruction + "\n" + _text(extra, "'input'", origin)
    return instruction


def _from_sharegpt(row: dict, origin: str) -> Record:
    return Record(origin=origin, messages=_checked(_sharegpt_messages(row, origin), origin,
                                                   ends_with="assistant"))


def _sharegpt_messages(row: dict, origin: str) -> list[dict]:
    turns = _field(row, "conversations", origin)
    if not isinstance(turns, list):
        raise DataError(f"{origin}: 'conversations' must be a list of {{from, value}} turns")
    messages = _system(row, origin)
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or "from" not in turn or "value" not in turn:
            found = sorted(turn) if isinstance(turn, dict) else type(turn).__name__
            raise DataError(f"{origin}: 'conversations'[{i}] needs keys 'from' and 'value'; found {found}")
        role = _SHAREGPT_ROLES.get(str(turn["from"]).lower())
        if role is None:
            raise DataError(f"{origin}: 'conversations'[{i}] has unknown speaker {turn['from']!r}; "
                            f"expected one of {sorted(_SHAREGPT_ROLES)}")
        messages.append({"role": role, "content": _text(turn["value"], f"'conversations'[{i}]", origin)})
    return messages


def _from_messages(row: dict, origin: str) -> Record:
    messages = _openai_messages(_field(row, "messages", origin), origin, "messages")
    return Record(origin=origin, messages=_checked(messages, origin, ends_with="assistant"))


def _openai_messages(turns: Any, origin: str, key: str) -> list[dict]:
    if not isinstance(turns, list):
        raise DataError(f"{origin}: {key!r} must be a list of {{role, content}} messages")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict) or "role" not in turn or "content" not in turn:
            found = sorted(turn) if isinstance(turn, dict) else type(turn).__name__
            raise DataError(f"{origin}: {key!r}[{i}] needs keys 'role' and 'content'; found {found}")
        if turn["role"] not in _ROLES:
            raise DataError(f"{origin}: {key!r}[{i}] has role {turn['role']!r}; expected one of {_ROLES}")
        messages.append({"role": turn["role"], "content": _text(turn["content"], f"{key!r}[{i}]", origin)})
    return messages


def _from_pref(row: dict, origin: str) -> Record:
    if "response_chosen" in row:  # MedicalGPT reward-model files: question + response_chosen/_rejected
        prompt = _system(row, origin) + [
            {"role": "user", "content": _text(_field(row, "question", origin), "'question'", origin)}]
        chosen, rejected = row["response_chosen"], row["response_rejected"]
    else:
        prompt = _pref_prompt(row, origin)
        chosen, rejected = row["chosen"], row["rejected"]
    return Record(origin=origin, messages=_checked(prompt, origin, ends_with="user"),
                  chosen=_response(chosen, "'chosen'", origin),
                  rejected=_response(rejected, "'rejected'", origin))


def _pref_prompt(row: dict, origin: str) -> list[dict]:
    if "conversations" in row:  # MedicalGPT DPO files: ShareGPT prompt turns
        return _sharegpt_messages(row, origin)
    if "instruction" in row:
        return _system(row, origin) + [{"role": "user", "content": _alpaca_prompt(row, origin)}]
    for key in ("prompt", "question"):
        if key in row:
            if isinstance(row[key], list):
                return _openai_messages(row[key], origin, key)
            return _system(row, origin) + [{"role": "user", "content": _text(row[key], repr(key), origin)}]
    raise DataError(f"{origin}: preference pair without a prompt; keys found: {sorted(row)}. "
                    "Expected 'prompt', 'question', 'instruction' or 'conversations'")


def _response(value: Any, what: str, origin: str) -> str:
    # OpenAI-style pairs give the response as a message list; its last assistant turn is the answer.
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        value = value[-1].get("content")
    return _text(value, what, origin)


def _checked(messages: list[dict], origin: str, ends_with: str) -> tuple[dict, ...]:
    """System first (optional), then user/assistant alternating, ending with `ends_with`."""
    body = messages[1:] if messages and messages[0]["role"] == "system" else messages
    if not body:
        raise DataError(f"{origin}: the dialogue has no user/assistant turns")
    for i, message in enumerate(body):
        expected = "user" if i % 2 == 0 else "assistant"
        if message["role"] != expected:
            raise DataError(f"{origin}: turn {i} is {message['role']!r} but {expected!r} was expected "
                            "(turns must alternate user/assistant after an optional system message)")
    if body[-1]["role"] != ends_with:
        raise DataError(f"{origin}: the dialogue must end with a {ends_with!r} turn")
    return tuple(messages)


_CONVERTERS: dict[str, Callable[[dict, str], Record]] = {
    "text": _from_text, "alpaca": _from_alpaca, "sharegpt": _from_sharegpt,
    "messages": _from_messages, "pref": _from_pref,
}
