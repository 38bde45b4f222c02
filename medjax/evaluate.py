"""python -m medjax.evaluate --model=SPEC --tasks=medqa,pubmedqa --data_dir=DIR --output=FILE.json

Evaluates a model on medical benchmarks (see medjax/eval/README.md for the data_dir layout and
the methods); writes FILE.json and FILE.predictions.jsonl and prints a table.
"""
from absl import app, flags

from medjax.cli_logging import quiet_by_default
from medjax.xla_cpu import prefer_eigen_dots

_MODEL = flags.DEFINE_string("model", None, "model SPEC: hf:DIR or ckpt:DIR", required=True)
_TASKS = flags.DEFINE_string("tasks", None, "comma-separated tasks, e.g. medqa,medmcqa,pubmedqa", required=True)
_DATA_DIR = flags.DEFINE_string("data_dir", None, "folder with one sub-folder per benchmark", required=True)
_METHOD = flags.DEFINE_enum("method", "loglik", ["loglik", "cloze", "generate", "cot", "voc"],
                            "scoring method")
_SHOTS = flags.DEFINE_integer("shots", 0, "few-shot examples from the dev split")
_LIMIT = flags.DEFINE_integer("limit", None, "evaluate only the first N questions of each task")
_BATCH = flags.DEFINE_integer("batch_size", 8, "rows per model call")
_OUTPUT = flags.DEFINE_string("output", None, "report path FILE.json (predictions go to FILE.predictions.jsonl)")
_SPLIT = flags.DEFINE_string("split", None, "split to evaluate (default: the task's preferred one present)")
_SEED = flags.DEFINE_integer("seed", 0, "seed of few-shot draws and sampling")
_STYLE = flags.DEFINE_enum("prompt_style", "auto", ["auto", "en", "zh"], "prompt language (auto: the task's)")
_CHAT = flags.DEFINE_string("chat_template", None, "wrap prompts in a chat template: 'auto' or a template name")
_PER_Q = flags.DEFINE_bool("per_question_shots", False, "draw different shots for every question")
_K = flags.DEFINE_integer("cot_samples", 5, "reasoning paths per question for --method=cot")
_TEMP = flags.DEFINE_float("temperature", 0.7, "sampling temperature of the cot paths")
_NEW = flags.DEFINE_integer("max_new_tokens", 16, "tokens for a direct answer (--method=generate)")
_REASON = flags.DEFINE_integer("max_reason_tokens", 256, "tokens for reasoning, arguments and open answers")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    prefer_eigen_dots()  # first: XLA reads XLA_FLAGS when JAX starts its backend
    import medjax
    from medjax.eval.harness import evaluate, load_tasks
    from medjax.eval.question import BenchmarkFormatError, LayoutError

    quiet_by_default()
    # Bad input ends in one line naming it, never a traceback: tasks and data are read before the
    # model loads; what only the model reveals (no room for a prompt, a chat template it lacks) after.
    try:
        load_tasks(_TASKS.value, _DATA_DIR.value, _METHOD.value, _SPLIT.value, _SHOTS.value)
        lm = medjax.load(_MODEL.value)
        if lm.tokenizer is None:
            raise ValueError(f"{_MODEL.value}: no tokenizer files next to the model; evaluation needs one")
        evaluate(lm, _TASKS.value, _DATA_DIR.value, method=_METHOD.value, shots=_SHOTS.value,
                 limit=_LIMIT.value, batch_size=_BATCH.value, output=_OUTPUT.value, split=_SPLIT.value,
                 seed=_SEED.value, model_spec=_MODEL.value, prompt_style=_STYLE.value,
                 chat_template=_CHAT.value, per_question_shots=_PER_Q.value, cot_samples=_K.value,
                 temperature=_TEMP.value, max_new_tokens=_NEW.value, max_reason_tokens=_REASON.value)
    except (ValueError, LayoutError, BenchmarkFormatError, FileNotFoundError) as e:
        raise SystemExit(f"error: {e}") from None


if __name__ == "__main__":
    app.run(main)
