"""Tokenizer and model training for blockfill-tiny. Never imported when serving completions."""
