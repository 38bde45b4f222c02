"""The benchmark registry: which folder of `data_dir` each task reads, its splits and its reader.

Expected layout of `data_dir` (it mirrors ../shared/data/benchmarks; one folder per benchmark):

  medqa_usmle/    test.jsonl | dev.jsonl | train.jsonl | sample.jsonl     (original or HF layout)
  medmcqa/        test.json | dev.json (or dev*.json) | train.json       (json lines)
  pubmedqa/       ori_pqal.json [+ test_ground_truth.json] | pqal_nontest.json
  mmlu_medical/   {dev,val,test}/<subject>_{dev,val,test}.csv              (6 medical subjects)
  cmmlu_medical/  {dev,test}/<subject>.csv                                 (10 medical subjects)
  ceval_medical/  {dev,val,test}/<subject>_{dev,val,test}.csv              (4 medical subjects)
  cmexam/         test*.csv | val*.csv | train*.csv
  cmb/            CMB-val/CMB-val-merge.json | CMB-dev/*.json | CMB-train/*.json  (CMB-Exam)
  cmb_clin/       CMB-Clin-qa.json (or CMB-Clin*.json)                    (open-ended)

Without `split`, a task evaluates the first split of its preference list that exists (the report
names it). Few-shot examples come from the task's dev split.
"""
from __future__ import annotations

import dataclasses
import functools
import glob
import os
from typing import Callable

from medjax.eval.question import LayoutError, Question
from medjax.eval.readers.cmb import read_cmb_clin, read_cmb_exam
from medjax.eval.readers.cmexam import read_cmexam
from medjax.eval.readers.exam_csv import read_exam_csv, subject_of
from medjax.eval.readers.medmcqa import read_medmcqa
from medjax.eval.readers.medqa import read_medqa
from medjax.eval.readers.pubmedqa import read_pqal, read_test_ids

MMLU_SUBJECTS = ("anatomy", "clinical_knowledge", "college_biology", "college_medicine",
                 "medical_genetics", "professional_medicine")
CMMLU_SUBJECTS = ("anatomy", "clinical_knowledge", "college_medical_statistics", "college_medicine",
                  "genetics", "high_school_biology", "nutrition", "professional_medicine",
                  "traditional_chinese_medicine", "virology")
CEVAL_SUBJECTS = ("basic_medicine", "clinical_medicine", "physician", "veterinary_medicine")


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    name: str
    folder: str
    splits: dict[str, tuple[str, ...]]  # split -> alternative globs; the first that matches is read
    eval_splits: tuple[str, ...]  # preference order when no split is asked for
    shot_split: str | None
    read: Callable[[str, str], list[Question]]  # (path, task name) -> questions
    subjects: tuple[str, ...] = ()  # keep only files of these subjects (empty: all)


@dataclasses.dataclass(frozen=True)
class LoadedSplit:
    task: str
    split: str
    questions: list[Question]
    files: list[str]


def _csv(language: str):
    return lambda path, task: read_exam_csv(path, task, language)


TASKS = {t.name: t for t in (
    TaskSpec("medqa", "medqa_usmle",
             {"test": ("test.jsonl",), "dev": ("dev.jsonl",), "train": ("train.jsonl",),
              "sample": ("sample.jsonl",)}, ("test", "dev", "sample"), "dev", read_medqa),
    TaskSpec("medmcqa", "medmcqa",
             {"test": ("test.json",), "dev": ("dev.json", "dev*.json"), "train": ("train.json",)},
             ("dev",), "train", read_medmcqa),
    TaskSpec("pubmedqa", "pubmedqa",
             {"test": ("ori_pqal.json",), "nontest": ("pqal_nontest.json", "ori_pqal.json"),
              "all": ("ori_pqal.json",)}, ("test", "nontest"), "nontest", read_pqal),
    TaskSpec("mmlu_medical", "mmlu_medical",
             {"test": ("test/*_test.csv",), "val": ("val/*_val.csv",), "dev": ("dev/*_dev.csv",)},
             ("test", "val"), "dev", _csv("en"), MMLU_SUBJECTS),
    TaskSpec("cmmlu_medical", "cmmlu_medical", {"test": ("test/*.csv",), "dev": ("dev/*.csv",)},
             ("test", "dev"), "dev", _csv("zh"), CMMLU_SUBJECTS),
    TaskSpec("ceval_medical", "ceval_medical",
             {"test": ("test/*_test.csv",), "val": ("val/*_val.csv",), "dev": ("dev/*_dev.csv",)},
             ("val", "dev"), "dev", _csv("zh"), CEVAL_SUBJECTS),
    TaskSpec("cmexam", "cmexam",
             {"test": ("test.csv", "test*.csv"), "val": ("val.csv", "val*.csv"),
              "train": ("train.csv", "train*.csv")}, ("test", "val"), "val", read_cmexam),
    TaskSpec("cmb", "cmb",
             {"val": ("CMB-val/CMB-val-merge.json", "*val*.json"),
              "dev": ("CMB-dev/*.json", "*dev*.json"), "train": ("CMB-train/*.json",)},
             ("val",), "dev", read_cmb_exam),
    TaskSpec("cmb_clin", "cmb_clin", {"test": ("CMB-Clin-qa.json", "CMB-Clin*.json")},
             ("test",), None, read_cmb_clin),
)}


def get_task(name: str) -> TaskSpec:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]


def task_dir(spec: TaskSpec, data_dir: str) -> str:
    if not os.path.isdir(data_dir):
        raise LayoutError(f"data_dir {data_dir!r} is not a directory")
    folder = os.path.join(data_dir, spec.folder)
    if not os.path.isdir(folder):
        found = sorted(d for d in os.listdir(data_dir) if os.path.isdir(os.path.join(data_dir, d)))
        raise LayoutError(
            f"task {spec.name!r} expects the folder {folder}/ (data_dir layout: one folder per "
            f"benchmark, see medjax/eval/tasks.py); found folders in {data_dir}: {found or 'none'}")
    return folder


def split_files(spec: TaskSpec, data_dir: str, split: str) -> list[str]:
    folder = task_dir(spec, data_dir)
    if split not in spec.splits:
        raise LayoutError(f"task {spec.name!r} has no split {split!r}; its splits: {list(spec.splits)}")
    for pattern in spec.splits[split]:
        files = sorted(glob.glob(os.path.join(folder, pattern)))
        if spec.subjects:
            files = [f for f in files if subject_of(f) in spec.subjects]
        if files:
            return files
    raise LayoutError(
        f"task {spec.name!r} split {split!r}: expected {' or '.join(spec.splits[split])} under "
        f"{folder}/" + (f" for subjects {list(spec.subjects)}" if spec.subjects else "")
        + f"; found: {_listing(folder) or 'nothing'}")


def available_splits(spec: TaskSpec, data_dir: str) -> list[str]:
    found = []
    for split in spec.splits:
        try:
            split_files(spec, data_dir, split)
            found.append(split)
        except LayoutError:
            pass
    return found


def load_split(name: str, data_dir: str, split: str | None = None) -> LoadedSplit:
    """Reads every record of a task's split (errors name file and line)."""
    spec = get_task(name)
    if split is None:
        existing = available_splits(spec, data_dir)
        choices = [s for s in spec.eval_splits if s in existing]
        if not choices:
            folder = task_dir(spec, data_dir)
            wanted = "; ".join(f"{s}: {' or '.join(spec.splits[s])}" for s in spec.eval_splits)
            raise LayoutError(
                f"task {name!r}: no evaluation split under {folder}/ (expected {wanted}); "
                f"found: {_listing(folder) or 'nothing'}")
        split = choices[0]
    files = split_files(spec, data_dir, split)
    if spec.name == "pubmedqa":
        return LoadedSplit(name, split, *_pubmedqa(files[0], split))
    questions = [q for path in files for q in spec.read(path, name)]
    return LoadedSplit(name, split, questions, files)


def _pubmedqa(path: str, split: str) -> tuple[list[Question], list[str]]:
    """PQA-L folds: test keeps the PMIDs of test_ground_truth.json, nontest drops them."""
    truth = os.path.join(os.path.dirname(path), "test_ground_truth.json")
    if os.path.basename(path) == "pqal_nontest.json" or split == "all":
        return read_pqal(path), [path]
    if not os.path.exists(truth):
        raise LayoutError(
            f"pubmedqa split {split!r} from {path} needs {truth} (the official test PMIDs); found: "
            f"{_listing(os.path.dirname(path))}")
    ids = read_test_ids(truth)
    if split == "test":
        return read_pqal(path, keep_ids=ids), [path, truth]
    return read_pqal(path, drop_ids=ids), [path, truth]


@functools.lru_cache(maxsize=None)
def _cached_listing(folder: str) -> tuple[str, ...]:
    out = []
    for root, _, names in os.walk(folder):
        out += [os.path.relpath(os.path.join(root, n), folder) for n in names]
    return tuple(sorted(out))


def _listing(folder: str, limit: int = 20) -> str:
    names = _cached_listing(folder)
    shown = ", ".join(names[:limit])
    return shown + (f", ... ({len(names)} files)" if len(names) > limit else "")
