"""A benchmark's training split as task-adaptation data, prompted exactly as medjax.eval prompts it.

    cfg.ta.data.train = "benchmark:pubmedqa:../shared/data/benchmarks/pubmedqa/pqal_nontest.json"
    cfg.ta.data.template = "plain"   # no chat template: BOS + prompt, then the answer and EOS

`benchmark:TASK:PATH` reads PATH (a file or glob) with the reader of TASK (medjax/eval/tasks.py), in
the benchmark's own file format, and turns each question into a one-turn dialogue: the user turn is
the zero-shot prompt `medjax.eval.prompts.build_prompt` gives the evaluation (header, context,
question, options, the `Answer:` cue) and the assistant turn is the gold label. The label carries no
leading space: a SentencePiece tokenizer starts a separately encoded response at a word boundary,
which is the token the evaluation scores after the cue (tests/test_recipes.py checks the ids match).
"""
from __future__ import annotations

import glob
import os
from typing import Iterator

from medjax.data.records import DataError

PREFIX = "benchmark:"


def is_benchmark_spec(spec) -> bool:
    return isinstance(spec, str) and spec.startswith(PREFIX)


def parse_benchmark_spec(spec: str) -> tuple[str, list[str]]:
    """(task, files) of `benchmark:TASK:PATH`."""
    from medjax.eval.tasks import TASKS

    task, sep, path = spec[len(PREFIX):].partition(":")
    if not sep or not task or not path:
        raise DataError(f"{spec!r}: expected benchmark:TASK:PATH, e.g. benchmark:medqa:data/medqa_usmle/train.jsonl")
    if task not in TASKS:
        raise DataError(f"{spec!r}: unknown task {task!r}; known tasks: {', '.join(TASKS)}")
    files = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
    missing = [f for f in files if not os.path.isfile(f)]
    if not files or missing:
        raise DataError(f"{spec!r}: no such file {(missing or [path])[0]}")
    return task, files


def benchmark_rows(spec: str) -> Iterator[tuple[dict, str]]:
    """(row, origin) per question: a `messages` row holding the evaluation prompt and the gold label."""
    from medjax.eval.prompts import answer_text, build_prompt, style_for
    from medjax.eval.question import BenchmarkFormatError
    from medjax.eval.tasks import TASKS

    task, files = parse_benchmark_spec(spec)
    for path in files:
        try:
            questions = TASKS[task].read(path, task)
        except BenchmarkFormatError as e:
            raise DataError(str(e)) from None
        if not questions:
            raise DataError(f"{path}: no {task} questions")
        for q in questions:
            if q.open_ended:
                raise DataError(f"{q.source}: open-ended item; task adaptation takes multiple-choice questions")
            prompt = build_prompt(q, [], style_for(q))
            yield ({"messages": [{"role": "user", "content": prompt},
                                 {"role": "assistant", "content": answer_text(q.answer)}]}, q.source)
