"""blockfill's language server: `blockfill serve` / `python -m lsp_server`. The only package that knows LSP."""

__version__ = "0.1.0"
