"""Data unification (HuatuoGPT-II): passages -> grounded question/answer pairs, written by an LLM.

    python -m medjax.data.unify --input=FILES --output=pairs.jsonl --generator=SPEC
        [--question_prompt=TEXT|@FILE] [--answer_prompt=TEXT|@FILE] [--max_new_tokens=N] ...

For each passage the generator first writes a question the passage answers, then an answer that
uses the passage's knowledge without citing it. Pairs that fail the length limits or leak the
passage (phrases such as "according to the passage", or answers copied from it) are dropped and
logged in OUTPUT.rejected.jsonl. Each output line is a ShareGPT record (ready for
`data.train`) with provenance: source file, offset (line or index) and generator. A re-run skips
every passage already in the output or the rejected log, so an interrupted run resumes (a half-written
last line, left by a killed run, is cut off with a warning). Prompts hold `{passage}` (and `{question}`)
placeholders; every other brace is literal text. The HTTP client is in unify_client.py.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Callable, Iterable

from absl import logging

from medjax.data.ngrams import ngrams
from medjax.data.readers import read_rows
from medjax.data.unify_client import public_name

QUESTION_PROMPT = (
    "Here is a passage from a medical text:\n\n{passage}\n\n"
    "Write one question that a patient or a medical student might ask and that this passage answers. "
    "Reply with the question only, in the language of the passage.")
ANSWER_PROMPT = (
    "Answer the question as a medical expert, using the knowledge in the reference below. Answer in your "
    "own words, in the language of the question, and do not mention or cite the reference.\n\n"
    "Reference:\n{passage}\n\nQuestion: {question}")
# Answers that point at their source instead of standing alone.
LEAK_PHRASES = ("the passage", "the text", "the reference", "the article", "the above", "provided text",
                "according to the", "文中", "原文", "上文", "文章", "参考资料", "参考文本", "根据资料", "根据文本")


@dataclasses.dataclass(frozen=True)
class Filters:
    min_question_chars: int = 5
    max_question_chars: int = 500
    min_answer_chars: int = 20
    max_answer_chars: int = 4000
    leak_phrases: tuple[str, ...] = LEAK_PHRASES
    max_copied_fraction: float = 0.8  # of the answer's 8-grams found verbatim in the passage

    def rejection(self, passage: str, question: str, answer: str) -> str | None:
        """Why a pair is rejected, or None when it passes."""
        if not self.min_question_chars <= len(question) <= self.max_question_chars:
            return f"question length {len(question)} outside [{self.min_question_chars}, {self.max_question_chars}]"
        if not self.min_answer_chars <= len(answer) <= self.max_answer_chars:
            return f"answer length {len(answer)} outside [{self.min_answer_chars}, {self.max_answer_chars}]"
        lowered = answer.lower()
        for phrase in self.leak_phrases:
            if phrase in lowered:
                return f"answer cites its source ({phrase!r})"
        grams = ngrams(answer, 8)
        if grams and len(grams & ngrams(passage, 8)) / len(grams) > self.max_copied_fraction:
            return "answer copies the passage"
        return None


def _prompt_text(value: str, needed: tuple[str, ...], flag: str) -> str:
    if value.startswith("@"):
        with open(value[1:], encoding="utf-8") as f:
            value = f.read()
    missing = [k for k in needed if "{" + k + "}" not in value]
    if missing:
        raise ValueError(f"--{flag} must contain {', '.join('{' + k + '}' for k in missing)}")
    return value


def _fill(template: str, **values: str) -> str:
    """The template with its {name} placeholders replaced in one pass (str.format would choke on other braces,
    and replacing one name after another would also fill a placeholder found inside a passage)."""
    return re.sub(r"\{(" + "|".join(values) + r")\}", lambda m: values[m.group(1)], template)


def _record_origin(line: bytes, where: str) -> str:
    try:
        origin = json.loads(line).get("origin")
    except (ValueError, AttributeError):
        origin = None
    if not isinstance(origin, str):
        raise ValueError(f"{where}: not a unification record with an 'origin'; fix or remove that line to resume")
    return origin


def _done_origins(*paths: str) -> set[str]:
    """Origins already in the output files. A last line without its newline is an interrupted write: it is cut
    off (its passage is done again), or given its newline when it is a whole record."""
    done = set()
    for path in paths:
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:
            data = f.read()
        complete, _, tail = data.rpartition(b"\n")
        done.update(_record_origin(line, f"{path}:{n}")
                    for n, line in enumerate(complete.split(b"\n"), 1) if line.strip())
        if tail.strip():
            try:
                done.add(_record_origin(tail, path))
                with open(path, "ab") as f:
                    f.write(b"\n")
            except ValueError:
                logging.warning("%s: the last line is half-written (an interrupted run); cutting it off: %r",
                                path, tail[:80])
                with open(path, "r+b") as f:
                    f.truncate(len(data) - len(tail))
    return done


def _provenance(origin: str) -> dict:
    source, sep, offset = origin.rpartition(":")
    if sep and offset.isdigit():
        return {"source": source, "offset": int(offset), "offset_kind": "line"}
    source, _, index = origin.rpartition("[")
    return {"source": source, "offset": int(index.rstrip("]")), "offset_kind": "record"}


def unify(passages: Iterable[tuple[str, str]], generate: Callable[[list[str]], list[str]], output: str,
          generator_name: str, question_prompt: str = QUESTION_PROMPT, answer_prompt: str = ANSWER_PROMPT,
          filters: Filters = Filters(), batch_size: int = 8) -> dict[str, int]:
    """Writes pairs for every passage (text, origin) not yet done; returns counts for this run."""
    rejected_path = output + ".rejected.jsonl"
    done = _done_origins(output, rejected_path)
    todo = [(text, origin) for text, origin in passages if origin not in done]
    counts = {"skipped_done": len(done), "written": 0, "rejected": 0}
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "a", encoding="utf-8") as out, open(rejected_path, "a", encoding="utf-8") as rejected:
        for start in range(0, len(todo), batch_size):
            batch = todo[start:start + batch_size]
            questions = generate([_fill(question_prompt, passage=text) for text, _ in batch])
            answers = generate([_fill(answer_prompt, passage=text, question=q)
                                for (text, _), q in zip(batch, questions)])
            for (text, origin), question, answer in zip(batch, questions, answers):
                reason = filters.rejection(text, question, answer)
                record = {"origin": origin, **_provenance(origin), "generator": generator_name}
                if reason:
                    rejected.write(json.dumps({**record, "reason": reason, "question": question,
                                               "answer": answer}, ensure_ascii=False) + "\n")
                    counts["rejected"] += 1
                else:
                    out.write(json.dumps({"conversations": [{"from": "human", "value": question},
                                                            {"from": "gpt", "value": answer}], **record},
                                         ensure_ascii=False) + "\n")
                    counts["written"] += 1
            out.flush()
            rejected.flush()
    return counts


def read_passages(spec: str, text_unit: str = "paragraph", min_chars: int = 1) -> list[tuple[str, str]]:
    """(text, origin) of each passage: .txt paragraphs/lines, or the 'text' field of records."""
    passages = []
    for row, origin in read_rows(spec, text_unit=text_unit):
        text = row.get("text") if isinstance(row, dict) else None
        if not isinstance(text, str):
            raise ValueError(f"{origin}: passages need a 'text' field; keys found: {sorted(row)}")
        if len(text.strip()) >= min_chars:
            passages.append((text.strip(), origin))
    return passages


def main(argv):
    from absl import flags

    from medjax.data.generators import make_generator

    f = flags.FLAGS
    filters = Filters(min_question_chars=f.min_question_chars, max_question_chars=f.max_question_chars,
                      min_answer_chars=f.min_answer_chars, max_answer_chars=f.max_answer_chars,
                      leak_phrases=tuple(p for p in f.leak_phrases.split("|") if p) if f.leak_filter else (),
                      max_copied_fraction=f.max_copied_fraction if f.leak_filter else 1.0)
    question_prompt = _prompt_text(f.question_prompt, ("passage",), "question_prompt")
    answer_prompt = _prompt_text(f.answer_prompt, ("passage", "question"), "answer_prompt")
    passages = read_passages(f.input, f.text_unit, f.min_passage_chars)
    if f.limit:
        passages = passages[:f.limit]
    generate = make_generator(f.generator, max_new_tokens=f.max_new_tokens, template=f.template, model=f.model,
                              timeout=f.timeout, max_retries=f.max_retries)
    counts = unify(passages, generate, f.output, public_name(f.generator), question_prompt, answer_prompt, filters,
                   f.batch_size)
    print(f"{len(passages)} passages: {counts['written']} pairs written, {counts['rejected']} rejected, "
          f"{counts['skipped_done']} already done -> {f.output}")


def _define_flags():
    from absl import flags

    flags.DEFINE_string("input", None, "passages: file, glob or directory", required=True)
    flags.DEFINE_string("output", None, "pairs file (JSON lines, appended to on resume)", required=True)
    flags.DEFINE_string("generator", None, "hf:DIR, ckpt:DIR or http(s):// OpenAI-compatible URL", required=True)
    flags.DEFINE_string("model", "default", "model name sent to an HTTP endpoint")
    flags.DEFINE_float("timeout", 120.0, "seconds an HTTP endpoint may take per request before a retry")
    flags.DEFINE_integer("max_retries", 5, "retries of an HTTP request on 429, 5xx, timeouts and dropped connections")
    flags.DEFINE_string("template", None, "chat template for a medjax generator (default: its own)")
    flags.DEFINE_string("question_prompt", QUESTION_PROMPT, "prompt with {passage}; @FILE reads a file")
    flags.DEFINE_string("answer_prompt", ANSWER_PROMPT, "prompt with {passage} and {question}; @FILE reads a file")
    flags.DEFINE_integer("max_new_tokens", 256, "generation length limit")
    flags.DEFINE_integer("batch_size", 8, "passages per generation call")
    flags.DEFINE_string("text_unit", "paragraph", "how .txt files split into passages: paragraph, line, file")
    flags.DEFINE_integer("min_passage_chars", 20, "shorter passages are ignored")
    flags.DEFINE_integer("limit", None, "only the first N passages")
    flags.DEFINE_integer("min_question_chars", 5, "length filter")
    flags.DEFINE_integer("max_question_chars", 500, "length filter")
    flags.DEFINE_integer("min_answer_chars", 20, "length filter")
    flags.DEFINE_integer("max_answer_chars", 4000, "length filter")
    flags.DEFINE_bool("leak_filter", True, "drop answers that cite or copy the passage")
    flags.DEFINE_string("leak_phrases", "|".join(LEAK_PHRASES), "'|'-separated phrases that mark a citing answer")
    flags.DEFINE_float("max_copied_fraction", 0.8, "of the answer's 8-grams found verbatim in the passage")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
