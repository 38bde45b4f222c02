"""The data config: every key has a default, and one command-line flag points a stage at a file."""
import os
import subprocess
import sys

import pytest

from medjax.data.config import data_config
from test_data_fixtures import llama2_tokenizer  # noqa: F401  (fixture)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_defaults_and_unknown_keys():
    cfg = data_config(train="a.jsonl")
    assert cfg.train == "a.jsonl" and cfg.eval is None and cfg.format == "auto" and cfg.template is None
    assert not cfg.train_on_prompt and not cfg.mask_history and not cfg.skip_bad_records
    assert cfg.truncation == "auto"
    with pytest.raises(KeyError, match="unknown key 'tempalte'"):
        data_config(tempalte="llama2")


def test_command_line_overrides(tmp_path):
    config_file = tmp_path / "stage.py"
    config_file.write_text("import ml_collections\nfrom medjax.data.config import data_config\n"
                           "def get_config():\n    c = ml_collections.ConfigDict()\n"
                           "    c.data = data_config()\n    return c\n")
    script = tmp_path / "show.py"
    script.write_text("from absl import app, flags\nfrom ml_collections import config_flags\n"
                      "config_flags.DEFINE_config_file('config')\n"
                      "def main(_):\n    d = flags.FLAGS.config.data\n"
                      "    print(repr((d.train, d.template, d.mask_history, d.max_records)))\n"
                      "    d.train = [{'name': 'web', 'path': 'web/*.txt', 'priority': 32}]\n"
                      "    print(d.train[0]['priority'])\n"
                      "app.run(main)\n")
    out = subprocess.run([sys.executable, str(script), f"--config={config_file}", "--config.data.train=my.jsonl",
                          "--config.data.template=llama3", "--config.data.mask_history=true",
                          "--config.data.max_records=5"], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": REPO})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[:2] == ["('my.jsonl', 'llama3', True, 5)", "32"]


def test_bad_settings_fail_before_reading_naming_the_key(llama2_tokenizer):
    from medjax.data.pipeline import build_train_iterator

    for key, value in [("truncation", "middle"), ("format", "yaml"), ("text_unit", "sentence")]:
        with pytest.raises(ValueError, match=f"data.{key}={value!r}"):
            build_train_iterator(data_config(train="never-read.jsonl", **{key: value}), llama2_tokenizer)
    with pytest.raises(KeyError, match="unknown chat template 'llama9'"):
        build_train_iterator(data_config(train="never-read.jsonl", template="llama9"), llama2_tokenizer, kind="sft")
