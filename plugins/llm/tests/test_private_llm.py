"""Differential privacy in the LLM backend: DP-SGD from scratch (a tokenizer that learns nothing the protected
stats do not show) and with LoRA adapters on a local model, ε counted and within the budget."""

import json

import pytest

from synth_assets.plugin_api import LEDGER_FILE, PrivacyLedger, SynthError
from synth_assets.testing import contract_table
from synth_llm.api import RelSynth

FAST = {"max_training_time": 0.1, "max_epochs": 50, "model_size": "tiny", "context_window": 256}
DP = {"max_epsilon": 8.0}
CANARY = "zqxjkvbwpyfg"


def with_canary(n: int = 1500):
    df = contract_table(n)
    df["plan"] = df["plan"].astype(object)
    df.loc[0, "plan"] = CANARY  # held by one row: nothing of it may reach the model
    return df


def test_a_model_trained_from_scratch_with_dp_counts_epsilon_and_learns_no_canary(tmp_path):
    model = RelSynth(workspace=tmp_path, differential_privacy=DP, **FAST).fit(with_canary())
    settings = model.training.settings
    assert settings["assembler"] == "grouped"  # a sample is a subject: never packed with others
    assert settings["differential_privacy"]["unit"] == "sample (subject)" and settings["batch_size"] == 512
    folder = model.pipeline.paths.model
    ledger = PrivacyLedger.model_validate_json((folder / LEDGER_FILE).read_text())
    assert 1.0 < ledger.epsilon() <= 8.0 and model.training.privacy["epsilon"] == pytest.approx(ledger.epsilon(), abs=1e-3)
    config = json.loads((folder / "config.json").read_text())
    assert config["tie_word_embeddings"] is False  # opacus clips layer by layer: no parameter shared by two
    vocabulary = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    assert not any(CANARY[i : i + 4] in token for token in vocabulary for i in range(len(CANARY) - 3))
    out = model.generate(sample_size=40, seed=1)
    assert len(out) == 40 and not out.plan.astype(str).str.contains(CANARY[:6]).any()


def test_free_text_under_dp_is_written_from_the_words_the_noisy_counts_keep(tmp_path):
    """A text column in a DP dataset: its words kept by noisy counts of subjects, the tokenizer learnt from texts
    drawn from those, the model under DP-SGD; a one-row surname reaches neither the stats nor the output."""
    import numpy as np

    df = with_canary()
    r = np.random.default_rng(0)
    df["title"] = [f"{r.choice(['Quiet', 'Golden', 'Broken'])} {r.choice(['River', 'Garden'])}" for _ in range(len(df))]
    df.loc[1, "title"] = "Quiet Vondequist"
    model = RelSynth(workspace=tmp_path, differential_privacy=DP, tables={"data": {"columns": {
        "title": {"encoding": "text"}}}}, **FAST).fit(df)
    stats = model.pipeline.load_stats().tables["data"].columns["title"]
    assert stats.text_form == "text" and {"quiet", "river"} <= set(stats.words) and "vondequist" not in stats.words
    ledger = PrivacyLedger.model_validate_json((model.pipeline.paths.model / LEDGER_FILE).read_text())
    assert ledger.epsilon() <= 8.0
    vocabulary = json.loads((model.pipeline.paths.model / "tokenizer.json").read_text())["model"]["vocab"]
    assert not any("ondeq" in token.lower() for token in vocabulary)
    out = model.generate(sample_size=60, seed=1)
    written = out.title.dropna()
    assert len(written) > 30 and all(set(w.lower() for w in t.split()) <= set(stats.words) for t in written)
    assert not written.str.contains("ondeq", case=False).any()


def test_lora_fine_tuning_with_dp_trains_the_adapters_only(tmp_path):
    from synth_llm.model import new_model, train_tokenizer

    df = contract_table(1500)  # DP's noise leaves a few hundred subjects' columns no range to show
    texts = [row.to_json() for _, row in df.head(400).astype(str).iterrows()]  # a stand-in for a downloaded model
    tokenizer = train_tokenizer(texts, vocab_size=600)
    base = new_model(tokenizer, "tiny", 256)
    base.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    model = RelSynth(workspace=tmp_path / "w", base_model=str(tmp_path / "base"), lora_rank=4, learning_rate=5e-3,
                     differential_privacy=DP, **{k: v for k, v in FAST.items() if k != "model_size"}).fit(df)
    assert model.training.settings["lora_rank"] == 4 and model.training.privacy["epsilon"] <= 8.0
    assert model.training.privacy["steps"] > 0
    folder = model.pipeline.paths.model
    assert (folder / "model.safetensors").is_file() and (folder / LEDGER_FILE).is_file()
    assert len(model.generate(sample_size=10, seed=1)) == 10


def test_dp_covers_full_synthesis_only():
    with pytest.raises(SynthError, match="differential_privacy covers task rel_synth: rel_semi_synth writes real rows"):
        RelSynth(task="rel_semi_synth", differential_privacy=DP, **FAST)
