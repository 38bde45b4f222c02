"""train/benchmarks.py: which methods run at the end of a stage and how their prompts are wrapped."""
import pytest

from medjax.train.benchmarks import benchmark_line, eval_methods, method_table, stage_chat_template
from medjax.train.config import load_config_file


@pytest.fixture(scope="module")
def config():
    return load_config_file("configs/antglm_med.py")  # cp (lm), ift (sft, default template), ta (sft, plain)


def test_as_trained_wraps_each_stage_as_its_training_records_were(config):
    c = config.copy_and_resolve_references()
    c.eval.chat_template = "as_trained"
    assert stage_chat_template(c, "cp") is None
    assert stage_chat_template(c, "ift") == (c.ift.data.template or "auto")
    assert c.ta.data.template == "plain" and stage_chat_template(c, "ta") is None  # plain records: bare prompts


@pytest.mark.parametrize("choice, expected", [("none", None), ("auto", "auto"), ("llama2", "llama2")])
def test_other_choices_apply_to_every_stage(config, choice, expected):
    c = config.copy_and_resolve_references()
    c.eval.chat_template = choice
    assert {stage_chat_template(c, s) for s in ("cp", "ift", "ta")} == {expected}


def test_methods_are_checked_and_tabled_side_by_side():
    assert eval_methods("loglik, voc") == ["loglik", "voc"]
    for bad in ("", "loglik,loglik", "nosuch"):
        with pytest.raises(ValueError, match="config.eval.method"):
            eval_methods(bad)
    table = method_table({"loglik": {"medqa": {"n": 60, "accuracy": 0.3, "chance": 0.25, "majority": 0.32}},
                          "voc": {"medqa": {"accuracy": 0.4}}})
    assert "0.3000  0.4000  0.2500  0.3200" in table


def test_the_run_summary_line_gives_every_method_and_the_baselines():
    medqa = {"n": 60, "accuracy": 0.667, "chance": 0.25, "majority": 0.317}
    one = {"method": "cloze", "tasks": {"medqa": medqa}}
    assert benchmark_line(one) == "medqa=0.667 (n=60; cloze; chance 0.250, majority 0.317)"
    both = {**one, "by_method": {"cloze": {"medqa": medqa}, "loglik": {"medqa": {"n": 60, "accuracy": 0.267}}}}
    assert benchmark_line(both) == "medqa=0.667 (n=60; cloze; loglik 0.267; chance 0.250, majority 0.317)"
