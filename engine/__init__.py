"""blockfill's engine: from (text, cursor) to fill-in-the-middle completions. Knows nothing of LSP."""
