"""Model backends: the HF transformers/peft backend, its loading and fingerprints."""
