"""Decontamination against the real benchmark samples in ../shared/data/benchmarks."""
import json
import os
import subprocess
import sys

from medjax.data.decontaminate import find_contaminated, index_benchmarks
from medjax.data.ngrams import ngrams, words
from medjax.data.readers import read_rows
from test_data_fixtures import SHARED

MEDQA = os.path.join(SHARED, "benchmarks", "medqa_usmle")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_ngrams_count_latin_words_and_cjk_characters():
    assert words("Fever, 38.5C in 3 days; 发热三天") == ["fever", "38", "5c", "in", "3", "days", "发", "热", "三", "天"]
    assert ngrams("a b c d", 3) == {"a b c", "b c d"}


def _train_file(tmp_path):
    with open(os.path.join(MEDQA, "sample.jsonl"), encoding="utf-8") as f:
        leaked = json.loads(f.readline())["question"]
    rows = [{"text": "Aspirin inhibits cyclooxygenase and lowers fever in most adults."},
            {"instruction": "Answer this exam question.", "input": leaked, "output": "B"},
            {"text": "发热是指体温升高超过正常范围，常见于感染性疾病。"},
            {"text": "Leaked in the middle: " + " ".join(leaked.split()[5:20]) + " and more words."}]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


def test_records_sharing_a_13_gram_with_a_benchmark_item_are_found(tmp_path):
    index = index_benchmarks(MEDQA)
    assert index.items == 100
    found = list(find_contaminated(read_rows(_train_file(tmp_path)), index))
    assert [m["origin"].rsplit(":", 1)[1] for m in found] == ["2", "4"]
    assert found[0]["benchmark_items"] == [os.path.join(MEDQA, "sample.jsonl") + ":1"]


def test_command_reports_and_removes(tmp_path):
    train, report, clean = _train_file(tmp_path), tmp_path / "report.json", tmp_path / "clean.jsonl"
    out = subprocess.run([sys.executable, "-m", "medjax.data.decontaminate", f"--train={train}",
                          f"--benchmarks={os.path.join(SHARED, 'benchmarks')}", f"--report={report}",
                          f"--output={clean}"], cwd=REPO, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": REPO})
    assert out.returncode == 0, out.stderr
    assert "2 of 4 training records share a 13-gram" in out.stdout
    assert json.loads(report.read_text())["contaminated_records"] == 2
    kept = [json.loads(line) for line in clean.read_text(encoding="utf-8").splitlines()]
    assert [r.get("text", "")[:7] for r in kept] == ["Aspirin", "发热是指体温升高"[:7]]
