"""The `llm` flow block: rows labelled by a local model under choices or a JSON schema, every answer valid; a
dataset's published model; an OpenAI-compatible server, with retries; and clear errors."""

import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import numpy as np
import pandas as pd
import pytest

from synth_assets.errors import SynthError
from synth_assets.files import read_parquet
from synth_assets.flows import audit_flow, run_flow
from synth_assets.project import load_project
from synth_assets.releases import Releases
from synth_assets.testing import write_project

CHOICES = ["cheap", "fair", "dear"]
SCORE = {"type": "object", "properties": {"score": {"type": "integer", "minimum": 1, "maximum": 5},
                                          "ok": {"type": "boolean"}, "tier": {"type": "string", "enum": ["a", "b"]}}}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A small GPT-2 that no one trained, saved as a Hugging Face folder: the grammar alone makes its answers
    valid, which is what the block promises whatever the model."""
    from synth_llm import model as lm

    texts = [f'Is a {c} carat {cut} diamond at {p} dollars cheap or dear? Answer: "cheap" "fair" "dear" '
             '{"score":3,"ok":true,"tier":"a"}' for c in (0.3, 1.2) for cut in ("Ideal", "Good") for p in (300, 9000)]
    tokenizer = lm.train_tokenizer(texts * 10, vocab_size=300)
    folder = tmp_path_factory.mktemp("tiny") / "model"
    lm.save(lm.new_model(tokenizer, "tiny", 256), tokenizer, folder)
    return folder


def gems(n: int) -> pd.DataFrame:
    r = np.random.default_rng(0)
    return pd.DataFrame({
        "id": np.arange(n),
        "carat": np.round(r.gamma(2, 0.4, n), 2),
        "cut": pd.Series(r.choice(["Ideal", "Good", None], n, p=[0.6, 0.3, 0.1]), dtype="object"),
        "price": pd.array(np.where(r.random(n) < 0.05, None, r.integers(300, 9000, n)), dtype="Int64"),
        "certified": r.random(n) < 0.5,
    })


def project(tmp_path, blocks: str, n: int):
    gems(n).to_parquet(tmp_path / "gems.parquet")
    root = write_project(tmp_path, "flows:\n  labelled:\n    input: {source: gems.parquet}\n    blocks:\n" + blocks)
    return load_project(root, config_path=root / "synth.yaml")


def test_an_llm_block_labels_a_thousand_rows_with_every_answer_valid(tmp_path, tiny_model):
    p = project(tmp_path, f"""
      - block_type: llm
        block_config:
          model: {{path: {tiny_model}}}
          prompt: "Is a {{{{ carat }}}} carat {{{{ cut }}}} diamond at {{{{ price }}}} dollars cheap or dear? Answer:"
          output: {{column: verdict, choices: {json.dumps(CHOICES)}}}
          max_retries: 0
      - block_type: llm
        block_name: judge
        block_config:
          model: {{path: {tiny_model}}}
          prompt: "{{% if certified %}}Certified. {{% endif %}}Score a {{{{ verdict }}}} diamond:"
          output: {{schema: {json.dumps(SCORE)}}}
          max_new_tokens: 96
          max_retries: 0
    """, n=1000)
    result = run_flow(p, "labelled", "20261206T000000Z-aaaaaaaa", log=lambda line: None)
    out = read_parquet(result.output)
    assert len(out) == 1000 and list(out.columns) == [*gems(1).columns, "verdict", "score", "ok", "tier"]
    assert out.verdict.isin(CHOICES).all() and out.verdict.nunique() == 3  # sampled, not one fixed answer
    for row in out[["score", "ok", "tier"]].to_dict("records"):
        jsonschema.validate({k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}, SCORE)
    for block in ("1_llm", "judge"):  # first try, no retry: the grammar held every answer
        figures = result.blocks[block]
        assert figures["answers"] == 1000 and figures["valid_share_first_try"] == 1.0
        assert figures["invalid_rows"] == 0 and figures["tokens_per_second"] > 0
    assert all(check.passed for check in audit_flow(p.flow("labelled"), result))
    pd.testing.assert_frame_equal(out[gems(1).columns.tolist()], gems(1000))  # the row's own values untouched


def test_an_llm_block_answers_with_a_datasets_published_model(tmp_path, tiny_model):
    p = project(tmp_path, """
      - block_type: llm
        block_config:
          model: {dataset: shop_llm}
          prompt: "{{ cut }}:"
          output: {column: verdict, choices: [cheap, dear]}
    """, n=20)
    releases = Releases(p.home / "shop_llm" / "model")
    with releases.write("20261206T000000Z-aaaaaaaa") as folder:
        shutil.copytree(tiny_model, folder, dirs_exist_ok=True)
    releases.publish("20261206T000000Z-aaaaaaaa", keep=2)
    out = read_parquet(run_flow(p, "labelled", "20261206T000000Z-bbbbbbbb", log=lambda line: None).output)
    assert out.verdict.isin(["cheap", "dear"]).all() and len(out) == 20


class _Server(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint that answers each prompt wrongly the first time and rightly after."""

    seen: dict[str, int] = {}
    requests: list[dict] = []

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).requests.append(body)
        if self.path != "/v1/chat/completions":
            self.send_response(404)
            self.end_headers()
            self.wfile.write(b'{"error": "no such route"}')
            return
        prompt = body["messages"][-1]["content"]
        count = type(self).seen[prompt] = type(self).seen.get(prompt, 0) + 1
        schema = body["response_format"]["json_schema"]["schema"]
        content = "not json" if count == 1 else json.dumps(schema["enum"][len(prompt) % len(schema["enum"])])
        reply = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}],
                            "usage": {"completion_tokens": 2}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Server.seen, _Server.requests = {}, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_an_llm_block_asks_a_server_and_asks_again_where_an_answer_is_invalid(tmp_path, server, monkeypatch):
    import synth_llm.flow_block

    monkeypatch.setattr(synth_llm.flow_block, "PROGRESS_SECONDS", 0.0)  # every batch is a slow one here
    p = project(tmp_path, f"""
      - block_type: llm
        block_config:
          model: {{url: {server}/v1, name: tiny, api_key: secret}}
          system: "Answer with one word."
          prompt: "Stone {{{{ id }}}}: {{{{ carat }}}} carat, {{{{ cut }}}}:"
          output: {{column: verdict, choices: [cheap, dear]}}
          concurrency: 4
    """, n=50)
    lines = []
    result = run_flow(p, "labelled", "20261206T000000Z-aaaaaaaa", log=lines.append)
    out = read_parquet(result.output)
    assert len(out) == 50 and out.verdict.isin(["cheap", "dear"]).all()
    # a long batch says what it did in the run's log while the flow goes on
    assert any("block 1_llm: batch 0: 50 answers in" in line and "50 valid" in line for line in lines)
    figures = result.blocks["1_llm"]
    assert figures["valid_share_first_try"] == 0 and figures["retried"] == 50 and figures["invalid_rows"] == 0
    first = _Server.requests[0]
    assert first["model"] == "tiny" and first["messages"][0] == {"role": "system", "content": "Answer with one word."}
    assert first["response_format"]["json_schema"]["schema"] == {"type": "string", "enum": ["cheap", "dear"]}


def test_answers_that_stay_invalid_are_dropped_and_fail_the_flows_check(tmp_path, server):
    p = project(tmp_path, f"""
      - block_type: llm
        block_config:
          model: {{url: {server}/v1, name: tiny}}
          prompt: "{{{{ carat }}}}"
          output: {{column: verdict, choices: [cheap, dear]}}
          max_retries: 0
    """, n=10)
    result = run_flow(p, "labelled", "20261206T000000Z-aaaaaaaa", log=lambda line: None)
    assert result.rows_out == 0 and result.invalid == {"1_llm": 10}
    failed = [c for c in audit_flow(p.flow("labelled"), result) if not c.passed]
    assert {c.name for c in failed} == {"flow_rows", "flow_valid_outputs"}
    assert "block '1_llm': 10 rows whose output stayed invalid" in failed[-1].description


def test_an_unreachable_server_and_an_unknown_column_are_clear_errors(tmp_path):
    p = project(tmp_path, """
      - block_type: llm
        block_config:
          model: {url: "http://127.0.0.1:9/v1", name: tiny}
          prompt: "{{ carat }}"
          output: {column: verdict, choices: [a, b]}
    """, n=5)
    with pytest.raises(SynthError, match="block '1_llm' \\(llm\\): cannot reach the server at http://127.0.0.1:9/v1"):
        run_flow(p, "labelled", "20261206T000000Z-aaaaaaaa", log=lambda line: None)
    p = project(tmp_path, """
      - block_type: llm
        block_config:
          model: {url: "http://127.0.0.1:9/v1", name: tiny}
          prompt: "{{ colour }}"
          output: {column: verdict, choices: [a, b]}
    """, n=5)
    with pytest.raises(SynthError, match="column 'colour' is not among its input's columns"):
        run_flow(p, "labelled", "20261206T000000Z-aaaaaaaa", log=lambda line: None)


@pytest.mark.parametrize("config, message", [
    ("{model: {path: m}, prompt: x, output: {choices: [a]}}", "choices need the column"),
    ("{model: {path: m, url: u}, prompt: x, output: {column: c, choices: [a]}}", "exactly one of dataset, path or url"),
    ("{model: {path: m}, prompt: x, output: {schema: {type: string}}}", "object schema with properties"),
])
def test_an_llm_block_with_a_mistake_fails_at_load(tmp_path, config, message):
    from synth_assets.errors import ConfigError

    with pytest.raises(ConfigError, match=f"flows.labelled.blocks.0.block_config.output|model.*{message}"):
        project(tmp_path, f"      - {{block_type: llm, block_config: {config}}}\n", n=5)
