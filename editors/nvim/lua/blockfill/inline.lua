--- Inline completion in one buffer, rendered by the plugin: requests, stale answers, typing through, accepts.
---
--- Flow: a keystroke in Insert mode (TextChangedI / CursorMovedI / InsertEnter) restarts a debounce timer;
--- when it fires, an Automatic `textDocument/inlineCompletion` goes out and the previous one, if still
--- pending, is cancelled (`$/cancelRequest`). An answer is used only if it belongs to the latest request and
--- the buffer changed since then by typing at the cursor and nothing else: the text before the request's
--- cursor is unchanged and what was typed since is the start of the item. Anything else (another line, a
--- cursor moved back, a character that does not match) drops it.
---
--- A shown item stays shown while the user types what it proposes ("typing through"): no round trip. Each
--- item keeps its LSP range, converted to byte positions when it arrives; an accept replaces that range (or
--- up to the cursor, if the user typed past its end) with the item's text, so characters typed while a
--- request was pending are neither lost nor doubled.

local accept = require('blockfill.accept')
local client = require('blockfill.client')
local ghost = require('blockfill.ghost')
local position = require('blockfill.position')

local api = vim.api
local M = {}

--- Set by `require("blockfill").setup()`.
---@type blockfill.Config
M.config = require('blockfill.config').defaults

---@class blockfill.Item
---@field text string   the item's insertText
---@field sr integer    range start row (0-based)
---@field sc integer    range start byte column
---@field er integer    range end row
---@field ec integer    range end byte column

---@class blockfill.Request
---@field id integer?
---@field client vim.lsp.Client
---@field kind integer
---@field row integer   cursor row (0-based) when sent
---@field col integer   cursor byte column when sent
---@field prefix string the cursor line's text before the cursor when sent
---@field on_items fun(items: blockfill.Item[])?

---@class blockfill.State
---@field buf integer
---@field augroup integer
---@field timer uv.uv_timer_t?
---@field pending blockfill.Request?
---@field items blockfill.Item[]?
---@field index integer
---@field invoked boolean  items came from an Invoked request (alternatives)
---@field hint boolean     show "(i/n)" after the ghost (after cycling)

---@type table<integer, blockfill.State>
M.buffers = {}

--- Counters for tests and `:BlockfillStatus`.
M.counts = { requests = 0, answered = 0, cancelled = 0, dropped = 0, shown = 0, accepted = 0 }

local function in_insert()
  return api.nvim_get_mode().mode:sub(1, 1) == 'i'
end

local function cursor_in(buf)
  local win = api.nvim_get_current_win()
  if api.nvim_win_get_buf(win) ~= buf then
    return nil
  end
  local cur = api.nvim_win_get_cursor(win)
  return cur[1] - 1, cur[2]
end

local function line_at(buf, row)
  return api.nvim_buf_get_lines(buf, row, row + 1, false)[1] or ''
end

local function stop_timer(s)
  if s.timer then
    s.timer:stop()
    if not s.timer:is_closing() then
      s.timer:close()
    end
    s.timer = nil
  end
end

local function cancel_pending(s)
  local req = s.pending
  s.pending = nil
  if req and req.id then
    M.counts.cancelled = M.counts.cancelled + 1
    client.cancel(req.client, req.id)
  end
end

--- The current item against the buffer as it is now, or nil when it no longer fits.
---@return {item: blockfill.Item, typed: string, ghost: string, row: integer, col: integer, er: integer, ec: integer}?
local function resolve(s)
  local item = s.items and s.items[s.index]
  local row, col = cursor_in(s.buf)
  if not item or not row then
    return nil
  end
  if row < item.sr or (row == item.sr and col < item.sc) then
    return nil
  end
  local ok, typed_lines = pcall(api.nvim_buf_get_text, s.buf, item.sr, item.sc, row, col, {})
  if not ok then
    return nil
  end
  local typed = table.concat(typed_lines, '\n')
  if item.text:sub(1, #typed) ~= typed or #typed >= #item.text then
    return nil
  end
  local er, ec = item.er, item.ec
  if er < row or (er == row and ec < col) then
    er, ec = row, col
  end
  return { item = item, typed = typed, ghost = item.text:sub(#typed + 1), row = row, col = col, er = er, ec = ec }
end

--- Draw the current item; false (and nothing drawn) when there is none that fits.
local function render(s)
  local r = resolve(s)
  if not r or not M.config.enabled then
    ghost.clear(s.buf)
    return false
  end
  local hint = s.hint and #s.items > 0 and (' (%d/%d)'):format(s.index, #s.items) or nil
  ghost.show(s.buf, r.row, r.col, r.ghost, { hl_group = M.config.hl_group, hint = hint })
  M.counts.shown = M.counts.shown + 1
  return true
end

--- Items of a response, with ranges converted to byte positions in the buffer now.
---@return blockfill.Item[]
local function convert(s, req, result)
  local items = {}
  local encoding = req.client.offset_encoding or 'utf-16'
  for _, raw in ipairs(type(result) == 'table' and (result.items or result) or {}) do
    local text = raw.insertText
    if type(text) == 'table' then -- StringValue (a snippet): shown and inserted as plain text
      text = text.value
    end
    if type(text) == 'string' and text ~= '' then
      local sr, sc, er, ec = req.row, req.col, req.row, req.col
      if raw.range then
        local start, stop = raw.range.start, raw.range['end']
        sr, er = start.line, stop.line
        sc = position.byte_col(line_at(s.buf, sr), start.character, encoding)
        ec = position.byte_col(line_at(s.buf, er), stop.character, encoding)
      end
      items[#items + 1] = { text = text, sr = sr, sc = sc, er = er, ec = ec }
    end
  end
  return items
end

local function on_response(s, req, err, result)
  if s.pending ~= req then
    return -- superseded by a newer request (already cancelled)
  end
  s.pending = nil
  M.counts.answered = M.counts.answered + 1
  if err or not M.config.enabled or not in_insert() or not api.nvim_buf_is_valid(s.buf) then
    return
  end
  local row, col = cursor_in(s.buf)
  if row ~= req.row or col < req.col or line_at(s.buf, row):sub(1, req.col) ~= req.prefix then
    M.counts.dropped = M.counts.dropped + 1
    return -- stale: the cursor left the line or moved back, or the text before it changed
  end
  local items = convert(s, req, result)
  if req.kind == client.AUTOMATIC and #items == 0 and s.items and resolve(s) then
    return -- nothing new: keep what is shown
  end
  s.items, s.index, s.invoked, s.hint = items, 1, req.kind == client.INVOKED, false
  if req.on_items then
    req.on_items(items)
  end
  render(s)
end

--- Send a request of `kind` from the cursor now, cancelling the previous one.
---@param on_items fun(items: blockfill.Item[])? called before the first item is drawn
function M.request(buf, kind, on_items)
  local s = M.buffers[buf]
  local c = client.get(buf)
  local row, col = cursor_in(buf)
  if not s or not c or not row or not M.config.enabled then
    return
  end
  cancel_pending(s)
  local line = line_at(buf, row)
  local req = { client = c, kind = kind, row = row, col = col, prefix = line:sub(1, col), on_items = on_items }
  local params = {
    textDocument = { uri = vim.uri_from_bufnr(buf) },
    position = { line = row, character = position.character(line, col, c.offset_encoding or 'utf-16') },
    context = { triggerKind = kind },
  }
  s.pending = req
  M.counts.requests = M.counts.requests + 1
  req.id = client.request(c, params, function(err, result)
    on_response(s, req, err, result)
  end, buf)
  if not req.id and s.pending == req then
    s.pending = nil
  end
end

--- A keystroke or cursor move in Insert mode.
local function on_change(s)
  if not M.config.enabled then
    return
  end
  if vim.fn.pumvisible() == 1 then
    ghost.clear(s.buf) -- the popup menu has the user's attention
    return
  end
  if render(s) then
    return -- typing through the shown item
  end
  s.items = nil
  stop_timer(s)
  s.timer = vim.uv.new_timer()
  s.timer:start(math.max(0, M.config.debounce_ms), 0, vim.schedule_wrap(function()
    stop_timer(s)
    if M.buffers[s.buf] == s and in_insert() and cursor_in(s.buf) and not resolve(s) then
      M.request(s.buf, client.AUTOMATIC)
    end
  end))
end

--- Forget the buffer's suggestion and pending work (InsertLeave, dismiss, toggle off).
function M.reset(buf)
  local s = M.buffers[buf]
  if not s then
    return
  end
  stop_timer(s)
  cancel_pending(s)
  s.items, s.hint = nil, false
  ghost.clear(buf)
end

--- Whether a suggestion is shown at the cursor now.
function M.visible(buf)
  local s = M.buffers[buf]
  return s ~= nil and M.config.enabled and resolve(s) ~= nil and ghost.read(buf) ~= nil
end

--- Accept the shown suggestion: `kind` 'all', 'word' or 'line'. Returns false when nothing is shown.
function M.accept(buf, kind)
  local s = M.buffers[buf]
  local r = s and M.visible(buf) and resolve(s)
  if not r then
    return false
  end
  local head, rest = accept.split(r.ghost, kind)
  local lines = vim.split(r.typed .. head, '\n', { plain = true })
  local item = r.item
  api.nvim_buf_set_text(buf, item.sr, item.sc, r.er, r.ec, lines)
  local row = item.sr + #lines - 1
  local col = (#lines == 1 and item.sc or 0) + #lines[#lines]
  api.nvim_win_set_cursor(0, { row + 1, col })
  M.counts.accepted = M.counts.accepted + 1
  client.accepted(client.get(buf), buf, head, rest ~= '')
  if rest == '' then
    s.items = nil
    ghost.clear(buf)
  else
    render(s)
  end
  return true
end

--- Show the next (`delta` 1) or previous (-1) alternative; the first time, ask for alternatives (Invoked).
function M.cycle(buf, delta)
  local s = M.buffers[buf]
  if not s or not M.config.enabled then
    return
  end
  if s.items and s.invoked and #s.items > 0 and resolve(s) then
    s.index = (s.index - 1 + delta) % #s.items + 1
    s.hint = true
    render(s)
    return
  end
  local shown = resolve(s)
  local current = shown and shown.item.text
  stop_timer(s)
  M.request(buf, client.INVOKED, function(items)
    local index = 1
    for i, item in ipairs(items) do
      if item.text == current then
        index = (i - 1 + delta) % #items + 1
      end
    end
    s.index, s.hint = index, true
  end)
end

function M.attach(buf)
  if M.buffers[buf] then
    return
  end
  local s = { buf = buf, index = 1, invoked = false, hint = false }
  s.augroup = api.nvim_create_augroup('blockfill.buf.' .. buf, { clear = true })
  M.buffers[buf] = s
  api.nvim_create_autocmd({ 'InsertEnter', 'TextChangedI', 'CursorMovedI' }, {
    group = s.augroup,
    buffer = buf,
    callback = function()
      on_change(s)
    end,
  })
  api.nvim_create_autocmd({ 'InsertLeave', 'BufLeave' }, {
    group = s.augroup,
    buffer = buf,
    callback = function()
      M.reset(buf)
    end,
  })
  api.nvim_create_autocmd({ 'BufUnload' }, {
    group = s.augroup,
    buffer = buf,
    callback = function()
      M.detach(buf)
    end,
  })
end

function M.detach(buf)
  local s = M.buffers[buf]
  if not s then
    return
  end
  M.reset(buf)
  M.buffers[buf] = nil
  pcall(api.nvim_del_augroup_by_id, s.augroup)
end

return M
