-- The plugin as a user first meets it: `require('blockfill').setup({})` (the default command `blockfill serve`
-- found on PATH, the default model), a function with an empty body and its check below. `o` on the header opens
-- the body, the ghost text is what the default model writes there, <Tab> accepts it, :w saves the file; the
-- Python side (tests/editors/test_nvim.py) then runs the file, whose own assert must pass.
-- Environment: BLOCKFILL_REPO (repository root), BLOCKFILL_FILE (the Python file to edit).
local H = dofile(os.getenv('BLOCKFILL_REPO') .. '/tests/editors/nvim/harness.lua')
local api = vim.api
-- Measured on a 2-core CPU: ready ~10 s after start and a body in a few seconds when idle, 4x that when busy.
local READY_MS, GHOST_MS = 120000, 60000

vim.notify = function(msg) -- headless Neovim writes messages to stdout without a line break
  H.log('  notify: %s', msg)
end
vim.opt.rtp:prepend(os.getenv('BLOCKFILL_REPO') .. '/editors/nvim')
require('blockfill').setup({})
vim.cmd('edit ' .. os.getenv('BLOCKFILL_FILE'))
local buf = api.nvim_get_current_buf()

H.run({
  { 'the default model loads, with no message from the server', function()
    local status = H.wait('the model to load', function()
      local s = require('blockfill.client').status()
      return s and (s.state == 'ready' or s.state == 'error') and s
    end, READY_MS)
    H.eq({ 'ready', 'blockfill-coder' }, { status.state, status.model }, 'state, model; ' .. tostring(status.message))
    local messages = api.nvim_exec2('messages', { output = true }).output
    H.truthy(not messages:find('LSP[blockfill]', 1, true), 'the server warned:\n' .. messages)
  end },

  { 'o in the empty body: ghost text, <Tab> accepts, :w saves', function()
    api.nvim_win_set_cursor(0, { 1, 0 })
    H.feed('o')
    local g = H.wait('ghost text in the body', function()
      return H.ghost(buf, 'blockfill.ghost', 'BlockfillHint')
    end, GHOST_MS)
    H.log('  ghost: %s', vim.inspect(g.text))
    H.feed('<Tab><Esc>')
    vim.cmd('write')
  end },
}, function()
  for _, c in ipairs(vim.lsp.get_clients({ name = 'blockfill' })) do
    c:stop()
  end
end)
