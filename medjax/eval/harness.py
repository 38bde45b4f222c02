"""`evaluate(lm, tasks, data_dir, ...)`: the library entry behind `python -m medjax.evaluate`, also
called by the trainer at the end of a stage. Reads each task's split, builds few-shot prompts,
runs one method, and returns (and optionally writes) the report."""
from __future__ import annotations

import time
from typing import Callable, Sequence

from medjax.eval.fewshot import select_shots
from medjax.eval.methods.cloze import run_cloze
from medjax.eval.methods.cot import run_cot
from medjax.eval.methods.generate import run_generate
from medjax.eval.methods.loglik import run_loglik
from medjax.eval.methods.voc import run_voc
from medjax.eval.metrics import summarize
from medjax.eval.options import EvalOptions
from medjax.eval.prompts import chat_renderer
from medjax.eval.report import file_sha256, format_table, write_report
from medjax.eval.tasks import TaskSpec, get_task, load_split

METHODS = {"loglik": run_loglik, "cloze": run_cloze, "generate": run_generate, "cot": run_cot, "voc": run_voc}


def evaluate(lm, tasks: str | Sequence[str], data_dir: str, method: str = "loglik", shots: int = 0,
             limit: int | None = None, batch_size: int = 8, output: str | None = None,
             split: str | None = None, seed: int = 0, *, model_spec: str | None = None,
             prompt_style: str = "auto", chat_template: str | None = None,
             per_question_shots: bool = False, cot_samples: int = 5, temperature: float = 0.7,
             max_new_tokens: int = 16, max_reason_tokens: int = 256,
             progress: Callable[[str], None] = print) -> dict:
    """Evaluates `lm` on `tasks` and returns the report dict; prints the table.

    chat_template: None (plain prompts), "auto" (the model tokenizer's own template) or a template
    name known to `medjax.data.templates`.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be positive, got {limit}")
    # Read every split (and few-shot pool) before any model work: bad input fails in seconds.
    specs, loaded = load_tasks(tasks, data_dir, method, split, shots)
    chat = None
    if chat_template:
        chat = chat_renderer(chat_template, lm.tokenizer, getattr(getattr(lm, "config", None), "family", None))
    options = EvalOptions(batch_size=batch_size, prompt_style=prompt_style, chat=chat,
                          max_new_tokens=max_new_tokens, max_reason_tokens=max_reason_tokens,
                          cot_samples=cot_samples, temperature=temperature, seed=seed, progress=progress)
    report = {"model": model_spec or getattr(lm, "spec", None) or type(lm).__name__, "method": method,
              "shots": shots, "seed": seed, "limit": limit, "prompt_style": prompt_style,
              "chat_template": chat_template, "tasks": {}}
    if method == "cot":
        report.update(cot_samples=cot_samples, temperature=temperature)
    all_predictions = []
    for spec, (split_data, pool, files) in zip(specs, loaded):
        questions = split_data.questions[:limit] if limit else split_data.questions
        progress(f"[{spec.name}] split={split_data.split} records={len(split_data.questions)} "
                 f"evaluating={len(questions)} method={method} shots={shots}")
        started = time.time()
        predictions = METHODS[method](lm, questions, select_shots(
            questions, pool, shots, seed, per_question_shots), options)
        for q, p in zip(questions, predictions):
            p["method"] = method
            if q.subject:
                p["subject"] = q.subject
        result = summarize(questions, predictions)
        skipped = [p for p in predictions if "skipped" in p]
        if skipped:
            progress(f"[{spec.name}] skipped {len(skipped)} of {len(questions)} questions (listed in the predictions "
                     f"file), e.g. {skipped[0]['id']}: {skipped[0]['skipped']}")
        result.update(split=split_data.split, records_in_split=len(split_data.questions), method=method,
                      shots=shots, seconds=round(time.time() - started, 3),
                      files={f: file_sha256(f) for f in files})
        report["tasks"][spec.name] = result
        all_predictions += predictions
    progress(format_table(report))
    if output:
        write_report(report, all_predictions, output)
        progress(f"wrote {output}")
    return report


def load_tasks(tasks: str | Sequence[str], data_dir: str, method: str = "loglik", split: str | None = None,
               shots: int = 0) -> tuple[list[TaskSpec], list]:
    """Checks the request and reads every task's data; the CLI calls it before loading a model."""
    names = [t.strip() for t in tasks.split(",") if t.strip()] if isinstance(tasks, str) else list(tasks)
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    if not names:
        raise ValueError("no task given")
    specs = [get_task(name) for name in names]  # unknown names fail before any file is read
    loaded = [_load_task(spec, data_dir, split, shots) for spec in specs]
    for spec, (split_data, _, _) in zip(specs, loaded):
        if method in ("cot", "voc") and any(q.open_ended for q in split_data.questions):
            raise ValueError(f"method {method!r} needs multiple-choice questions; task {spec.name!r} is open-ended "
                             "(use loglik or generate)")
    return specs, loaded


def _load_task(spec: TaskSpec, data_dir: str, split: str | None, shots: int):
    """(evaluated split, few-shot pool, files read) of one task."""
    split_data = load_split(spec.name, data_dir, split)
    files, pool = list(split_data.files), []
    if shots:
        if spec.shot_split is None:
            raise ValueError(f"task {spec.name!r} has no dev split to draw few-shot examples from")
        shot_data = load_split(spec.name, data_dir, spec.shot_split)
        pool = shot_data.questions
        files += [f for f in shot_data.files if f not in files]
    return split_data, pool, files
