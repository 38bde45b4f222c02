"""Data unification end to end: a fake OpenAI-compatible server on 127.0.0.1 and a tiny medjax model."""
import http.server
import json
import os
import subprocess
import sys
import threading

import pytest

from medjax.data.unify import Filters, read_passages, unify
from test_data_fixtures import LLAMA2_TOKENIZER

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PASSAGES = [
    "Fever is a rise of body temperature above the normal range, most often caused by infection.",
    "Aspirin irreversibly inhibits cyclooxygenase, which lowers prostaglandin synthesis and fever.",
    "发热是指机体在致热原作用下，体温调节中枢的调定点上移而引起的调节性体温升高。",
]


class _FakeChat(http.server.BaseHTTPRequestHandler):
    """Answers /v1/chat/completions like an OpenAI server; one passage gets a leaking answer."""
    calls = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        type(self).calls.append((self.path, prompt, self.headers["Authorization"]))
        if "Write one question" in prompt:
            reply = "What does aspirin do?" if "Aspirin" in prompt else "What is fever, and why does it happen?"
        elif "aspirin" in prompt.lower():
            reply = "According to the passage, aspirin blocks an enzyme."
        else:
            reply = "Fever means the body temperature is set higher than normal, usually because of infection."
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def fake_server():
    _FakeChat.calls = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeChat)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _passage_file(tmp_path):
    path = tmp_path / "passages.txt"
    path.write_text("\n\n".join(PASSAGES), encoding="utf-8")
    return str(path)


def test_unify_against_an_openai_compatible_server_filters_and_resumes(tmp_path, fake_server):
    passages, output = _passage_file(tmp_path), str(tmp_path / "pairs.jsonl")
    # A base URL ending in /v1, with credentials and a query string that provenance must not record.
    generator = fake_server.replace("//", "//me:s3cret@") + "/v1?tenant=t0"
    cmd = [sys.executable, "-m", "medjax.data.unify", f"--input={passages}", f"--output={output}",
           f"--generator={generator}", "--batch_size=2", "--min_answer_chars=10", "--timeout=30", "--max_retries=1"]
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    run = lambda: subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**env, "PYTHONPATH": REPO})
    out = run()
    assert out.returncode == 0, out.stderr
    assert "3 passages: 2 pairs written, 1 rejected" in out.stdout
    assert {(path, auth) for path, _, auth in _FakeChat.calls} == {("/v1/chat/completions?tenant=t0", "Basic bWU6czNjcmV0")}
    assert len(_FakeChat.calls) == 6
    pairs = [json.loads(line) for line in open(output, encoding="utf-8")]
    assert [p["offset"] for p in pairs] == [1, 5] and all(p["source"] == passages for p in pairs)
    assert all(p["generator"] == fake_server + "/v1" for p in pairs)
    assert not any(secret in open(path).read() for secret in ("s3cret", "tenant") for path in (output, output + ".rejected.jsonl"))
    assert pairs[0]["conversations"][0] == {"from": "human", "value": "What is fever, and why does it happen?"}
    rejected = [json.loads(line) for line in open(output + ".rejected.jsonl", encoding="utf-8")]
    assert rejected[0]["offset"] == 3 and "cites its source" in rejected[0]["reason"]
    # A re-run finds every passage done and asks the server nothing.
    out = run()
    assert out.returncode == 0 and "0 pairs written, 0 rejected, 3 already done" in out.stdout
    assert len(_FakeChat.calls) == 6
    # The pairs are training data as they are.
    from medjax.data.formats import to_record
    assert to_record(pairs[0], "pairs:1").messages[1]["role"] == "assistant"


def test_a_resumed_run_does_only_the_missing_passages(tmp_path):
    passages = read_passages(_passage_file(tmp_path))
    output = str(tmp_path / "pairs.jsonl")
    prompts = []

    def generate(batch):
        prompts.extend(batch)
        return ["Why does this happen at all?" if "Write one" in p else "Because the body responds so." for p in batch]

    unify(passages[:1], generate, output, "fake", filters=Filters(min_answer_chars=5))
    unify(passages, generate, output, "fake", filters=Filters(min_answer_chars=5))
    assert len(prompts) == 6  # 2 for the first passage, then 2 for each of the two left
    assert len(open(output).read().splitlines()) == 3


def test_unify_with_a_tiny_local_medjax_model(tmp_path):
    from flax import nnx

    from medjax.api import LM
    from medjax.data.generators import make_generator
    from medjax.data.tokenizer import load_tokenizer
    from medjax.models.config import ModelConfig
    from medjax.models.llama import build

    tokenizer = load_tokenizer(LLAMA2_TOKENIZER)
    cfg = ModelConfig(vocab_size=tokenizer.vocab_size, hidden_size=16, intermediate_size=32, num_layers=1,
                      num_heads=2, num_kv_heads=1, max_position_embeddings=512)
    LM(build(cfg, nnx.Rngs(0)), tokenizer).save(f"hf:{tmp_path / 'tiny'}")
    generate = make_generator(f"hf:{tmp_path / 'tiny'}", max_new_tokens=6, template="llama2")
    output = str(tmp_path / "pairs.jsonl")
    counts = unify(read_passages(_passage_file(tmp_path))[:2], generate, output, "hf:tiny", batch_size=2,
                   filters=Filters(min_question_chars=0, min_answer_chars=0, leak_phrases=(),
                                   max_copied_fraction=1.0))
    assert counts["written"] == 2
    pairs = [json.loads(line) for line in open(output, encoding="utf-8")]
    assert [p["offset"] for p in pairs] == [1, 3] and pairs[0]["generator"] == "hf:tiny"
    assert all(isinstance(p["conversations"][1]["value"], str) for p in pairs)


def _answering(prompts):
    def generate(batch):
        prompts.extend(batch)
        return ["Why does this happen at all?" if "Write one" in p else "Because the body responds so." for p in batch]
    return generate


def test_prompts_keep_literal_braces_and_passages_are_not_templates(tmp_path):
    passage = "A passage quoting {question} and a set {1, 2} verbatim, as medical texts sometimes do."
    prompts = []
    question_prompt = 'Write one question as JSON, {"question": "..."}, about:\n{passage}'
    unify([(passage, "p.txt:1")], _answering(prompts), str(tmp_path / "pairs.jsonl"), "fake",
          question_prompt=question_prompt, answer_prompt="{passage} | {question} | {not a placeholder}",
          filters=Filters(min_answer_chars=5))
    assert prompts == ['Write one question as JSON, {"question": "..."}, about:\n' + passage,
                       passage + " | Why does this happen at all? | {not a placeholder}"]


def test_a_half_written_last_line_is_cut_off_and_the_run_resumes(tmp_path, caplog):
    passages = read_passages(_passage_file(tmp_path))
    output, prompts = tmp_path / "pairs.jsonl", []
    generate, filters = _answering(prompts), Filters(min_answer_chars=5)
    unify(passages[:2], generate, str(output), "fake", filters=filters)
    first, second = output.read_bytes().splitlines(keepends=True)
    output.write_bytes(first + second[:len(second) // 2])  # killed while writing the second record
    (tmp_path / "pairs.jsonl.rejected.jsonl").write_bytes('{"origin": "发'.encode()[:-1])  # cut inside a character
    prompts.clear()
    unify(passages, generate, str(output), "fake", filters=filters)
    assert len(prompts) == 4  # the passages of the cut record and the missing one
    assert sorted(json.loads(line)["offset"] for line in output.read_text().splitlines()) == [1, 3, 5]
    assert (tmp_path / "pairs.jsonl.rejected.jsonl").read_bytes() == b""
    assert sum("half-written" in r.getMessage() for r in caplog.records) == 2
    # A whole last record without its newline is kept (and given its newline) ...
    output.write_bytes(output.read_bytes().rstrip(b"\n"))
    prompts.clear()
    unify(passages, generate, str(output), "fake", filters=filters)
    assert prompts == [] and len(output.read_text().splitlines()) == 3 and output.read_bytes().endswith(b"}\n")
    # ... and a broken line before the last is an error that names it.
    output.write_bytes(b"{not json\n" + output.read_bytes())
    with pytest.raises(ValueError, match=r"pairs.jsonl:1: not a unification record"):
        unify(passages, generate, str(output), "fake", filters=filters)
