--- The language client: starting `blockfill serve` through the built-in LSP client, and talking to it.
---
--- `vim.lsp.start` (Neovim 0.10+) starts one client per project root and reuses it for every buffer there.
--- Requests go through `client:request` (0.11 method syntax; the 0.10 field call where that is all there is),
--- so Neovim flushes pending didChange notifications first and the server sees the text the user sees.

local M = {}

M.name = 'blockfill'
M.INLINE = 'textDocument/inlineCompletion'
M.STATUS = 'blockfill/status'
M.ACCEPTED = 'blockfill/accepted'
M.STATS = 'blockfill/stats'
M.AUTOMATIC, M.INVOKED = 2, 1 -- InlineCompletionTriggerKind

--- The latest `blockfill/status` params per client id: {state, model, lastLatencyMs, message}.
---@type table<integer, {state: string, model: string?, lastLatencyMs: number?, message: string?}>
M.statuses = {}

local has_011 = vim.fn.has('nvim-0.11') == 1

local function call(client, method, ...)
  if has_011 then
    return client[method](client, ...)
  end
  return client[method](...)
end

local function on_status(_, params, ctx)
  if type(params) ~= 'table' then
    return
  end
  for key, value in pairs(params) do
    if value == vim.NIL then
      params[key] = nil
    end
  end
  M.statuses[ctx.client_id] = params
  vim.api.nvim_exec_autocmds('User', { pattern = 'BlockfillStatus', modeline = false, data = params })
end

--- Start (or reuse) the client for `buf`. Returns the client id, or nil when the server cannot start.
---@param buf integer
---@param config blockfill.Config
---@return integer?
function M.start(buf, config)
  local cmd = config.cmd
  if type(cmd) == 'table' and vim.fn.executable(cmd[1]) ~= 1 then
    if not M._warned then
      M._warned = true
      vim.notify(
        ('blockfill: %q is not executable; set cmd = { "/path/to/.venv/bin/blockfill", "serve" } in setup()')
          :format(tostring(cmd[1])),
        vim.log.levels.WARN
      )
    end
    return nil
  end
  local init_options = vim.deepcopy(config.settings)
  if config.model then
    init_options.model = config.model
  end
  if vim.tbl_isempty(init_options) then
    init_options = vim.empty_dict() -- an empty Lua table goes out as a JSON list; the server takes an object
  end
  local file = vim.api.nvim_buf_get_name(buf)
  local root = vim.fs.root(buf, config.root_markers)
    or (file ~= '' and vim.fs.dirname(file))
    or vim.fn.getcwd()
  local capabilities = nil
  if config.capabilities then
    capabilities = vim.tbl_deep_extend('force', vim.lsp.protocol.make_client_capabilities(), config.capabilities)
  end
  return vim.lsp.start({
    name = M.name,
    cmd = cmd,
    root_dir = root,
    init_options = init_options,
    capabilities = capabilities,
    handlers = { [M.STATUS] = on_status },
  }, { bufnr = buf })
end

--- The blockfill client attached to `buf`, if any.
---@return vim.lsp.Client?
function M.get(buf)
  return vim.lsp.get_clients({ bufnr = buf, name = M.name })[1]
end

--- Send `textDocument/inlineCompletion`; returns the request id (nil if the client refused).
---@return integer?
function M.request(client, params, handler, buf)
  local ok, id = call(client, 'request', M.INLINE, params, handler, buf)
  return ok and id or nil
end

--- `$/cancelRequest` for `id` (the server stops the model between two denoising steps).
function M.cancel(client, id)
  if client and id and not call(client, 'is_stopped') then
    call(client, 'cancel_request', id)
  end
end

--- Tell the server what the user accepted (`{uri, text, partial}`; kept in a local file, nothing leaves).
function M.accepted(client, buf, text, partial)
  if client and not call(client, 'is_stopped') then
    call(client, 'notify', M.ACCEPTED, { uri = vim.uri_from_bufnr(buf), text = text, partial = partial })
  end
end

--- The latest status of `client_id` (or of any blockfill client).
function M.status(client_id)
  if client_id then
    return M.statuses[client_id]
  end
  for _, client in ipairs(vim.lsp.get_clients({ name = M.name })) do
    if M.statuses[client.id] then
      return M.statuses[client.id], client
    end
  end
end

return M
