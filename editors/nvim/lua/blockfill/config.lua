--- Options of `require("blockfill").setup()`: defaults, validation, merge.
---
--- One table, checked once at the edge (the plugin's counterpart of the server's `apply_settings`): a wrong
--- type is reported with the option's name instead of failing later inside an autocommand.

local M = {}

--- Filetypes with a tree-sitter grammar in the server (`engine/context.py`): completions elsewhere work, but
--- without syntax-aware context.
M.default_filetypes = {
  'python', 'javascript', 'javascriptreact', 'typescript', 'typescriptreact', 'go', 'rust', 'java', 'c', 'cpp',
}

---@class blockfill.Keymaps
---@field accept string|false       accept the whole suggestion (falls back to the key's own meaning)
---@field accept_word string|false  accept the next word
---@field accept_line string|false  accept up to the end of the suggestion's current line
---@field next string|false         next alternative (an Invoked request fetches several)
---@field prev string|false         previous alternative
---@field dismiss string|false      hide the suggestion

---@class blockfill.Config
---@field cmd string[]|fun(dispatchers: table): table  how to start the server (argv, or vim.lsp.rpc.connect())
---@field model string?             model spec sent as the `model` setting (a `blockfill models list` name, a directory, a hub id)
---@field settings table            initializationOptions: any engine or server setting (snake or camel case)
---@field filetypes string[]        filetypes that start the server
---@field root_markers string[]     files that mark a project root (the server is shared per root)
---@field debounce_ms integer       wait this long after a keystroke before asking (the server debounces too)
---@field enabled boolean           start with completions on (`:BlockfillToggle` flips it)
---@field keymaps blockfill.Keymaps|false  insert-mode mappings; false for none, a key set to false skips it
---@field use_native boolean        Neovim 0.12+: let vim.lsp.inline_completion render and accept
---@field capabilities table?       extra client capabilities, deep-merged (e.g. general.positionEncodings)
---@field hl_group string           highlight group of the ghost text (default BlockfillGhost -> Comment)
M.defaults = {
  cmd = { 'blockfill', 'serve' },
  model = nil,
  settings = {},
  filetypes = M.default_filetypes,
  root_markers = { '.git', 'pyproject.toml', 'package.json', 'go.mod', 'Cargo.toml' },
  debounce_ms = 50,
  enabled = true,
  keymaps = {
    accept = '<Tab>',
    accept_word = '<M-Right>',
    accept_line = '<M-Down>',
    next = '<M-]>',
    prev = '<M-[>',
    dismiss = '<C-]>',
  },
  use_native = false,
  capabilities = nil,
  hl_group = 'BlockfillGhost',
}

--- The defaults with `opts` merged in; raises a readable error on a wrong type.
---@param opts table?
---@return blockfill.Config
function M.resolve(opts)
  opts = opts or {}
  vim.validate({ opts = { opts, 'table' } })
  local keymaps = opts.keymaps
  local merged = vim.tbl_deep_extend('force', vim.deepcopy(M.defaults), opts)
  -- Lists replace, not merge: a user's filetypes or cmd is the whole list.
  for _, key in ipairs({ 'cmd', 'filetypes', 'root_markers' }) do
    if opts[key] ~= nil then
      merged[key] = opts[key]
    end
  end
  if keymaps == false then
    merged.keymaps = false
  end
  vim.validate({
    cmd = { merged.cmd, { 'table', 'function' } },
    model = { merged.model, 'string', true },
    settings = { merged.settings, 'table' },
    filetypes = { merged.filetypes, 'table' },
    root_markers = { merged.root_markers, 'table' },
    debounce_ms = { merged.debounce_ms, 'number' },
    enabled = { merged.enabled, 'boolean' },
    keymaps = { merged.keymaps, { 'table', 'boolean' } },
    use_native = { merged.use_native, 'boolean' },
    capabilities = { merged.capabilities, 'table', true },
    hl_group = { merged.hl_group, 'string' },
  })
  if merged.keymaps == true then
    merged.keymaps = vim.deepcopy(M.defaults.keymaps)
  end
  if merged.keymaps then
    for name, lhs in pairs(merged.keymaps) do
      if M.defaults.keymaps[name] == nil then
        error(('blockfill: unknown keymap %q; known: %s'):format(
          name, table.concat(vim.tbl_keys(M.defaults.keymaps), ', ')))
      end
      if lhs ~= false and type(lhs) ~= 'string' then
        error(('blockfill: keymaps.%s must be a key string or false'):format(name))
      end
    end
  end
  return merged
end

return M
