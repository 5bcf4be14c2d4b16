"""synth-assets' LLM backend: tables as JSON samples, a causal language model, schema-constrained decoding."""
