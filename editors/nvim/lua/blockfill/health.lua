--- `:checkhealth blockfill`: what a user checks first when no ghost text appears.

local M = {}

function M.check()
  local health = vim.health
  local blockfill = require('blockfill')
  local client = require('blockfill.client')
  health.start('blockfill')
  if vim.fn.has('nvim-0.10') == 1 then
    health.ok('Neovim ' .. tostring(vim.version()))
  else
    health.error('Neovim 0.10+ is needed (inline virtual text, vim.lsp.start, vim.fs.root)')
  end
  local cmd = blockfill.config.cmd
  if type(cmd) == 'function' then
    health.ok('cmd is a function (e.g. a TCP connection)')
  elseif vim.fn.executable(cmd[1]) == 1 then
    health.ok(('cmd: %s'):format(table.concat(cmd, ' ')))
  else
    health.error(('cmd %q is not executable'):format(tostring(cmd[1])), {
      'run `bash setup.sh` in the blockfill repository',
      'then setup({ cmd = { "/path/to/blockfill/.venv/bin/blockfill", "serve" } })',
    })
  end
  local clients = vim.lsp.get_clients({ name = client.name })
  if #clients == 0 then
    health.info('no server running: open a file of a configured filetype ('
      .. table.concat(blockfill.config.filetypes, ', ') .. ')')
  end
  for _, c in ipairs(clients) do
    local status = client.statuses[c.id]
    local line = ('server %d (%s): %s, model %s'):format(c.id, c.config.root_dir or '?',
      status and status.state or 'starting', status and status.model or '?')
    if status and status.state == 'error' then
      health.error(line .. ': ' .. tostring(status.message))
    else
      health.ok(line)
    end
    if not c.server_capabilities.inlineCompletionProvider then
      health.error('the server does not offer textDocument/inlineCompletion: is it `blockfill serve`?')
    end
  end
  if blockfill.config.use_native then
    if require('blockfill.native').available() then
      health.ok('use_native: vim.lsp.inline_completion renders')
    else
      health.warn('use_native is set, but this Neovim has no vim.lsp.inline_completion: the plugin renders')
    end
  end
  health.info('completions ' .. (blockfill.config.enabled and 'on' or 'off'))
end

return M
