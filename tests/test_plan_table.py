"""benchmarks/plan_table.py: which slices it compiles, in what order, what it caches, and the table it
writes. The compiles are faked here except one: the `test` preset through `python -m medjax.plan` on
cpu:2, which checks the command line the script builds is one plan accepts."""
from __future__ import annotations

import pytest

from benchmarks import plan_table as pt
from medjax.models.presets import published_config

GiB = 1 << 30


def test_candidates_skip_slices_the_lower_bound_rules_out():
    """llama2-7b full needs 16 B per weight (fp32 weights, Adam mu + nu, fp32 gradients): 108 GB, so one
    v5e chip (16 GiB) and 2x2 are ruled out without compiling; NF4 QLoRA starts at one chip; v5p's
    smallest slice holds any of them. Candidates run smallest first."""
    cfg = published_config("llama2-7b")
    full = pt.make_row("llama2-7b", "full", "v5e", cfg, 4096, 2048)
    assert (full.seq_len, full.rows_per_chip) == (2048, 2)
    assert pt.candidates(full, cfg)[:2] == ["v5e:2x4", "v5e:4x4"]
    assert pt.candidates(pt.make_row("llama2-7b", "qlora", "v5e", cfg, 4096, 2048), cfg)[0] == "v5e:1x1"
    assert pt.candidates(pt.make_row("llama2-7b", "full", "v5p", cfg, 4096, 2048), cfg)[0] == "v5p:2x2x1"
    saved = cfg.num_layers * 2 * 2048 * cfg.hidden_size * 2
    assert pt.lower_bound_bytes(cfg, "full", 8, 2, 2048) == pytest.approx(16 * cfg.num_params() / 8 + saved)
    glm10 = published_config("glm-10b")  # learned positions stop at 1024: same tokens per chip, shorter rows
    row = pt.make_row("glm-10b", "lora", "v5e", glm10, 4096, 2048)
    assert (row.seq_len, row.rows_per_chip) == (1024, 4)
    flags = pt.plan_flags(row, "v5e:2x2")
    assert "--config.train.batch_size=16" in flags and "--config.model.param_dtype=bfloat16" in flags


def _fits(total_gib, devices):
    return {"status": "fits", "total_bytes": total_gib * GiB, "hbm_bytes": 16 * GiB, "devices": devices,
            "params": 6.7e9, "est_mfu": 0.5, "tokens_per_s_per_chip": 1234.4}


def test_smallest_fit_stops_at_the_first_fit_and_reuses_the_cache(tmp_path):
    cfg = published_config("llama2-7b")
    row = pt.make_row("llama2-7b", "full", "v5e", cfg, 4096, 2048)
    calls = []

    def runner(flags):
        topology = next(f for f in flags if f.startswith("--topology=")).split("=")[1]
        calls.append(topology)
        return {"status": "too big"} if topology == "v5e:2x4" else _fits(14.2, 16)

    path = str(tmp_path / "cache.json")
    found = pt.smallest_fit(row, cfg, pt.Cache(path), "v1", runner, any_version=False, log=lambda s: None)
    assert calls == ["v5e:2x4", "v5e:4x4"] and found[0] == "v5e:4x4" and found[1]["status"] == "fits"
    again = pt.smallest_fit(row, cfg, pt.Cache(path), "v1", runner, any_version=False, log=lambda s: None)
    assert calls == ["v5e:2x4", "v5e:4x4"] and again == found  # read back from the file: no compile
    pt.smallest_fit(row, cfg, pt.Cache(path), "v2", runner, any_version=True, log=lambda s: None)
    assert len(calls) == 2  # --any_version takes v1's rows
    pt.smallest_fit(row, cfg, pt.Cache(path), "v2", runner, any_version=False, log=lambda s: None)
    assert len(calls) == 4  # a new code version compiles again

    timeouts = []
    topology, record = pt.smallest_fit(row, cfg, pt.Cache(str(tmp_path / "t.json")), "v1",
                                       lambda flags: timeouts.append(1), any_version=False, log=lambda s: None)
    assert (topology, record["status"]) == ("v5e:2x4", "timeout") and not (tmp_path / "t.json").exists()


def test_markdown_row_and_maxtext_beside_it():
    cfg = published_config("llama2-7b")
    row_e = pt.make_row("llama2-7b", "full", "v5e", cfg, 4096, 2048)
    row_p = pt.make_row("llama2-7b", "full", "v5p", cfg, 4096, 2048)
    results = {("llama2-7b", "full"): {"v5e": (row_e, "v5e:4x4", _fits(14.24, 16)), "v5p": (row_p, None, None)},
               ("llama2-7b", "lora"): {"v5e": (row_e, "v5e:16x16", {"status": "too big"})}}
    lines = pt.markdown(results, ["v5e", "v5p"]).splitlines()
    assert len(lines) == 4 and lines[1].count("---") == lines[0].count("|") - 1
    assert lines[2] == ("| llama2-7b | full | 2048 x 2 | 4x4 (16) | 14.2 / 16 | 50% | 1,234 | not run |  |  |  | "
                        "61.1% (16B, v5e-256) / 67.8% (32B, v5p-128) |")
    assert "| none to v5e:16x16 |" in lines[3]


def test_the_command_line_compiles_the_test_preset_on_cpu(tmp_path):
    """One real compile: the flags plan_table builds (QLoRA, bf16, remat, fsdp over both devices) are
    accepted by medjax.plan, and its JSON becomes a record."""
    row = pt.Row("test", "qlora", "cpu", seq_len=64, rows_per_chip=1)
    record = pt.run_plan(pt.plan_flags(row, "cpu:2"), timeout=600)
    assert record["status"] == "fits", record
    assert record["devices"] == 2 and record["mesh"] == {"data": 1, "fsdp": 2, "tensor": 1}
    assert record["tokens_per_step"] == 2 * 64 and record["total_bytes"] > record["state_bytes"] > 0
