"""`python -m lsp_server [--tcp HOST:PORT] [--model M] [--set k=v]`: the same as `blockfill serve`."""

import sys

from lsp_server.cli import main

sys.exit(main(sys.argv[1:]))
