"""The embedded data of the published recipes (configs/antglm_med.py, configs/huatuo2_one_stage.py).

    python -m medjax.assets.build_recipe_data [--output_dir=DIR] [--generator=SPEC]

Writes, under medjax/assets/recipes/ (committed; tests/test_recipes.py checks a fresh build matches):
  ift/{qa,reasoning,multiple_choice,conversation}.jsonl  the embedded instruction records (default/sft.jsonl)
      sorted into AntGLM-Med's IFT record types: single-turn questions, case vignettes answered with
      their reasoning, four-option questions, multi-turn dialogues
  pubmedqa/{ori_pqal.json,test_ground_truth.json,pqal_nontest.json}  AntGLM-Med's adapted task in
      PubMedQA PQA-L's own files (medjax/assets/pubmedqa_items.py): the test fold (the PMIDs of
      test_ground_truth.json) asks about conditions no item of the non-test fold asks about;
      pqal_nontest.json is ori_pqal.json without the test fold (what task adaptation trains on)
  unified/{web,literature,encyclopedia,books}.jsonl  HuatuoGPT-II's unified data: passages of the
      embedded corpus, each source standing in for one of the paper's corpora, turned into
      question/answer pairs by medjax.data.unify (its prompts, filters and provenance fields)

The unification generator: by default `kb`, a stand-in for an LLM that answers the unify prompts from
the knowledge base (the condition a passage is about), because the embedded tiny model writes no usable
pairs; `--generator=ckpt:DIR | hf:DIR | http(s)://...` runs a real one (then the output differs).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import re

from medjax.assets.instruction_records import definition_qa, symptoms_qa, test_qa, treatment_qa
from medjax.assets.knowledge import CONDITIONS
from medjax.assets.pubmedqa_items import render_pqal
from medjax.eval.prompts import EN

ASSETS_DIR = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT_DIR = os.path.join(ASSETS_DIR, "recipes")
SFT = os.path.join(ASSETS_DIR, "default", "sft.jsonl")
CORPUS = os.path.join(ASSETS_DIR, "default", "corpus")
# HuatuoGPT-II source -> embedded corpus file standing in for it
UNIFIED_SOURCES = {"web": "patient_leaflets.txt", "literature": "case_notes.txt",
                   "encyclopedia": "encyclopedia.txt", "books": "body_systems.txt"}
PASSAGES_PER_SOURCE = 40
PUBMEDQA_TEST_CONDITIONS = 24  # x 3 items (one per decision): n = 72 held-out questions
PUBMEDQA_TRAIN_ROUNDS = 2  # items per decision about each other condition
IFT_TYPES = ("qa", "reasoning", "multiple_choice", "conversation")


def recipe_paths() -> dict[str, str]:
    """Absolute paths of the committed recipe data, by role: ift/<type> and unified/<source> (ShareGPT
    jsonl), benchmarks_dir (the --data_dir holding pubmedqa/), pubmedqa_nontest (PQA-L json)."""
    paths = {f"ift/{t}": os.path.join(DEFAULT_OUTPUT_DIR, "ift", f"{t}.jsonl") for t in IFT_TYPES}
    paths.update({f"unified/{s}": os.path.join(DEFAULT_OUTPUT_DIR, "unified", f"{s}.jsonl") for s in UNIFIED_SOURCES})
    paths["benchmarks_dir"] = DEFAULT_OUTPUT_DIR
    paths["pubmedqa_nontest"] = os.path.join(DEFAULT_OUTPUT_DIR, "pubmedqa", "pqal_nontest.json")
    return paths


def build(output_dir: str, generator: str = "kb", seed: int = 0) -> None:
    for name, records in ift_sources().items():
        _write_jsonl(os.path.join(output_dir, "ift", f"{name}.jsonl"), records)
    write_pubmedqa(os.path.join(output_dir, "pubmedqa"), seed)
    write_unified(os.path.join(output_dir, "unified"), generator)


def ift_sources() -> dict[str, list[dict]]:
    """default/sft.jsonl by record type (a record goes to the first type it fits)."""
    sources = {t: [] for t in IFT_TYPES}
    with open(SFT, encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            asks = [t["value"] for t in record["conversations"] if t["from"] == "human"]
            if len(asks) > 1:
                sources["conversation"].append(record)
            elif "\nA. " in asks[0] or asks[0].startswith(EN.cloze_header):  # lettered, or asked without options
                sources["multiple_choice"].append(record)
            elif "diagnosis?" in asks[0] or "suspect?" in asks[0]:  # vignettes: findings -> diagnosis -> test
                sources["reasoning"].append(record)
            else:
                sources["qa"].append(record)
    return sources


def write_pubmedqa(directory: str, seed: int = 0) -> None:
    """ori_pqal.json and test_ground_truth.json as PubMedQA publishes them (one-line json objects keyed by
    PMID; made-up 8-digit ids), and pqal_nontest.json: ori_pqal.json less the test PMIDs."""
    rng = random.Random(f"{seed}:pubmedqa")
    test_conditions = set(rng.sample(range(len(CONDITIONS)), PUBMEDQA_TEST_CONDITIONS))
    test, nontest = [], []
    for i, c in enumerate(CONDITIONS):
        if i in test_conditions:
            test += render_pqal([c], CONDITIONS, 1, rng)
        else:
            nontest += render_pqal([c], CONDITIONS, PUBMEDQA_TRAIN_ROUNDS, rng)
    items = test + nontest
    pmids = [str(p) for p in rng.sample(range(10_000_000, 40_000_000), len(items))]
    is_test = {pmid: i < len(test) for i, pmid in enumerate(pmids)}
    order = list(zip(pmids, items))
    rng.shuffle(order)  # the folds interleave in the file, as in the real one
    _write_json(os.path.join(directory, "ori_pqal.json"), dict(order))
    _write_json(os.path.join(directory, "test_ground_truth.json"),
                {p: item["final_decision"] for p, item in order if is_test[p]})
    _write_json(os.path.join(directory, "pqal_nontest.json"), {p: item for p, item in order if not is_test[p]})


class KnowledgeBaseGenerator:
    """Answers medjax.data.unify's two prompts from the knowledge base: the question asks about the
    condition the passage names first (definition, symptoms, test or treatment, by the passage's
    hash), the answer is the knowledge base's sentence for it."""

    def __init__(self):
        self.answers: dict[str, str] = {}
        names = sorted((c.name for c in CONDITIONS), key=len, reverse=True)
        self.pattern = re.compile("|".join(re.escape(n) for n in names), re.IGNORECASE)
        self.by_name = {c.name.lower(): c for c in CONDITIONS}

    def __call__(self, prompts: list[str]) -> list[str]:
        return [self._answer(p) if p.startswith("Answer the question") else self._question(p) for p in prompts]

    def _question(self, prompt: str) -> str:
        found = self.pattern.search(prompt)
        if not found:
            return ""  # no condition named: unify's length filter rejects the pair
        rng = random.Random(prompt)
        maker = rng.choice((definition_qa, symptoms_qa, test_qa, treatment_qa))
        question, answer = maker(self.by_name[found.group(0).lower()], rng)
        self.answers[question] = answer
        return question

    def _answer(self, prompt: str) -> str:
        return self.answers.get(prompt.rsplit("Question: ", 1)[-1].strip(), "")


def write_unified(directory: str, generator: str) -> None:
    from medjax.data.unify import read_passages, unify

    if generator == "kb":
        generate, name = KnowledgeBaseGenerator(), "kb (knowledge-base stand-in, medjax/assets/build_recipe_data.py)"
    else:
        from medjax.data.generators import make_generator
        from medjax.data.unify_client import public_name

        generate, name = make_generator(generator), public_name(generator)
    for source, filename in UNIFIED_SOURCES.items():
        out = os.path.join(directory, f"{source}.jsonl")
        for path in (out, out + ".rejected.jsonl"):  # unify appends (resumes): start afresh
            if os.path.exists(path):
                os.remove(path)
        passages = read_passages(os.path.join(CORPUS, filename), min_chars=20)[:PASSAGES_PER_SOURCE]
        unify(_relative(passages), generate, out, name)
        if os.path.exists(out + ".rejected.jsonl") and not os.path.getsize(out + ".rejected.jsonl"):
            os.remove(out + ".rejected.jsonl")


def _relative(passages: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Origins relative to the package, so a build is the same in every checkout."""
    return [(text, os.path.relpath(origin, ASSETS_DIR)) for text, origin in passages]


def _write_json(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(data, f)


def _write_jsonl(path: str, records: list[dict]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default=DEFAULT_OUTPUT_DIR)
    parser.add_argument("--generator", default="kb", help="kb (default), ckpt:DIR, hf:DIR or an http(s):// endpoint")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    build(args.output_dir, args.generator, args.seed)
    print(f"wrote the recipe data to {args.output_dir}")


if __name__ == "__main__":
    main()
