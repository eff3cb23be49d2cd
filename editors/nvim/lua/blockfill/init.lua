--- blockfill for Neovim: ghost-text completions from `blockfill serve` (a block-diffusion model) over the
--- built-in LSP client (`textDocument/inlineCompletion`, LSP 3.18). See `:help blockfill`.
---
--- Modules: config (options), client (server start, requests, status), inline (the plugin's own rendering:
--- requests, stale answers, accepts), ghost (extmarks), accept (word/line splitting), native (Neovim 0.12's
--- vim.lsp.inline_completion), keymaps (mappings with fallback), position (UTF-8/16/32 columns).

local client = require('blockfill.client')
local config = require('blockfill.config')
local ghost = require('blockfill.ghost')
local inline = require('blockfill.inline')
local keymaps = require('blockfill.keymaps')
local native = require('blockfill.native')

local api = vim.api
local M = {}

---@type blockfill.Config
M.config = config.resolve()

--- Per attached buffer: which renderer, and the keys mapped.
---@type table<integer, {native: boolean, keys: string[]}>
local attached = {}
local augroup = nil

local function use_native()
  return M.config.use_native and native.available()
end

local function filetype_wanted(buf)
  return vim.bo[buf].buftype == '' and vim.tbl_contains(M.config.filetypes, vim.bo[buf].filetype)
end

--- The plugin's own actions for `buf` (each returns true when it acted).
local function own_actions(buf)
  return {
    accept = function()
      return inline.accept(buf, 'all')
    end,
    accept_word = function()
      return inline.accept(buf, 'word')
    end,
    accept_line = function()
      return inline.accept(buf, 'line')
    end,
    next = function()
      if not inline.visible(buf) then
        return false
      end
      inline.cycle(buf, 1)
      return true
    end,
    prev = function()
      if not inline.visible(buf) then
        return false
      end
      inline.cycle(buf, -1)
      return true
    end,
    dismiss = function()
      if not inline.visible(buf) then
        return false
      end
      inline.reset(buf)
      return true
    end,
  }
end

--- Start rendering and mappings in `buf` (the blockfill client is attached to it).
local function attach(buf)
  if attached[buf] or not api.nvim_buf_is_valid(buf) then
    return
  end
  local is_native = use_native()
  local actions
  if is_native then
    native.enable(buf, M.config.enabled)
    actions = native.actions(buf)
  else
    inline.attach(buf)
    actions = own_actions(buf)
  end
  attached[buf] = { native = is_native, keys = keymaps.map(buf, M.config.keymaps, actions) }
end

local function detach(buf)
  local state = attached[buf]
  if not state then
    return
  end
  attached[buf] = nil
  keymaps.unmap(buf, state.keys)
  if state.native then
    if api.nvim_buf_is_valid(buf) then
      pcall(native.enable, buf, false)
    end
  else
    inline.detach(buf)
  end
end

--- Start the server for `buf` if its filetype is configured (attaching follows on LspAttach).
function M.start(buf)
  buf = buf or api.nvim_get_current_buf()
  if M.config.enabled and filetype_wanted(buf) then
    client.start(buf, M.config)
  end
end

--- Turn completions on or off everywhere (the server keeps running, so turning back on is instant).
---@param on boolean?  nil flips
function M.toggle(on)
  if on == nil then
    on = not M.config.enabled
  end
  M.config.enabled = on
  inline.config = M.config
  for buf, state in pairs(attached) do
    if state.native then
      native.enable(buf, on)
    elseif not on then
      inline.reset(buf)
    end
  end
  if on then
    for _, buf in ipairs(api.nvim_list_bufs()) do
      if api.nvim_buf_is_loaded(buf) and not client.get(buf) then
        M.start(buf)
      end
    end
  end
  return on
end

--- One line for statuslines: "blockfill ready 142 ms" (nil before the server said anything).
function M.statusline()
  local status = client.status()
  if not status then
    return nil
  end
  local latency = status.lastLatencyMs and (' %d ms'):format(status.lastLatencyMs) or ''
  return ('blockfill %s%s'):format(M.config.enabled and status.state or 'off', latency)
end

--- What `:BlockfillStatus` prints.
function M.status_lines()
  local lines = {}
  local clients = vim.lsp.get_clients({ name = client.name })
  if #clients == 0 then
    lines[1] = ('blockfill: no server running (filetypes: %s; cmd: %s)'):format(
      table.concat(M.config.filetypes, ', '),
      type(M.config.cmd) == 'table' and table.concat(M.config.cmd, ' ') or '<function>'
    )
  end
  for _, c in ipairs(clients) do
    local s = client.statuses[c.id] or {}
    local latency = s.lastLatencyMs and ('%.0f ms'):format(s.lastLatencyMs) or '-'
    lines[#lines + 1] = ('blockfill: %s, model %s, last latency %s (client %d, %s)'):format(
      s.state or 'starting', s.model or '?', latency, c.id, c.config.root_dir or '')
    if s.message and s.message ~= vim.NIL then
      lines[#lines + 1] = '  ' .. tostring(s.message)
    end
  end
  local mode = use_native() and 'vim.lsp.inline_completion' or 'plugin ghost text'
  lines[#lines + 1] = ('completions %s (%s)'):format(M.config.enabled and 'on' or 'off', mode)
  return lines
end

-- Public actions, for custom mappings: each returns true when it acted.
local function current_actions()
  local buf = api.nvim_get_current_buf()
  local state = attached[buf]
  if not state then
    return nil
  end
  return state.native and native.actions(buf) or own_actions(buf)
end
for _, name in ipairs({ 'accept', 'accept_word', 'accept_line', 'next', 'prev', 'dismiss' }) do
  M[name] = function()
    local actions = current_actions()
    return actions ~= nil and actions[name]() or false
  end
end

--- Whether ghost text is shown in the current buffer (plugin rendering).
function M.visible()
  return inline.visible(api.nvim_get_current_buf())
end

--- Set up (or set up again, with new options): commands, autocommands, and the server for open buffers.
---@param opts blockfill.Config|table?
function M.setup(opts)
  for buf in pairs(attached) do
    detach(buf)
  end
  M.config = config.resolve(opts)
  inline.config = M.config
  api.nvim_set_hl(0, 'BlockfillGhost', { default = true, link = 'Comment' })
  api.nvim_set_hl(0, ghost.hint_group, { default = true, link = 'NonText' })

  augroup = api.nvim_create_augroup('blockfill', { clear = true })
  api.nvim_create_autocmd('FileType', {
    group = augroup,
    pattern = M.config.filetypes,
    callback = function(args)
      M.start(args.buf)
    end,
  })
  api.nvim_create_autocmd('LspAttach', {
    group = augroup,
    callback = function(args)
      local c = vim.lsp.get_client_by_id(args.data.client_id)
      if c and c.name == client.name then
        attach(args.buf)
      end
    end,
  })
  api.nvim_create_autocmd('LspDetach', {
    group = augroup,
    callback = function(args)
      local c = vim.lsp.get_client_by_id(args.data.client_id)
      if c and c.name == client.name then
        detach(args.buf)
      end
    end,
  })

  api.nvim_create_user_command('BlockfillStatus', function()
    api.nvim_echo(vim.tbl_map(function(line)
      return { line .. '\n' }
    end, M.status_lines()), false, {})
  end, { desc = 'blockfill: server state, model and last latency' })
  api.nvim_create_user_command('BlockfillToggle', function()
    local on = M.toggle()
    vim.notify('blockfill: completions ' .. (on and 'on' or 'off'))
  end, { desc = 'blockfill: turn completions on or off' })

  for _, buf in ipairs(api.nvim_list_bufs()) do
    if api.nvim_buf_is_loaded(buf) then
      if client.get(buf) then
        attach(buf)
      else
        M.start(buf)
      end
    end
  end
  return M
end

return M
