"""The LLM backend passes the backend contract suite (flat tables and a table tree; seed data)."""

from synth_assets.testing import BackendContract

# seconds of training: enough for valid JSON under the schema, and for the blocking checks
TRAIN = {"max_training_time": 0.25, "max_epochs": 200, "model_size": "tiny", "context_window": 256}


class TestLLM(BackendContract):
    backend = "llm"
    train = TRAIN
    sample_size = 600  # the DCR share of 300 rows of this small table varies by ±0.03 around 0.55
    # rel_synth learns to complete given root columns when told which ones
    conditioning_train = {"seed_data": {"cols_ctx": ["region", "score"]}}
