"""Evaluation on medical benchmarks: readers, prompts, scorers (loglik, cloze, generate, cot, voc), reports.

Entry points: `medjax.eval.harness.evaluate(lm, tasks, data_dir, ...)` and the CLI
`python -m medjax.evaluate`. The expected `data_dir` layout is documented in `medjax/eval/tasks.py`
and medjax/eval/README.md.
"""
