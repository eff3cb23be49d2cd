--- Neovim 0.12+: `vim.lsp.inline_completion` renders and accepts; the plugin adds partial accepts, the
--- `blockfill/accepted` notification and the same mappings.
---
--- The native client requests on its own (InsertEnter / CursorMovedI, debounced) and draws in its own
--- namespace. Alternatives: it cycles the items of its last answer (`select`), which for an automatic
--- request is one item; the plugin's own rendering asks for more (an Invoked request).
--- This API is new in 0.12 (the builds tested are 0.12 development builds); `available()` checks for it.

local accept = require('blockfill.accept')
local client = require('blockfill.client')

local api = vim.api
local M = {}

function M.available()
  local ic = vim.lsp.inline_completion
  return ic ~= nil and type(ic.get) == 'function' and type(ic.enable) == 'function'
end

function M.enable(buf, on)
  vim.lsp.inline_completion.enable(on, { bufnr = buf })
end

--- A `vim.Range` (0.12: `start`/`end_` positions with 0-based `row`/byte `col`) as four numbers, or nil.
local function range_of(item)
  local r = item.range
  if type(r) ~= 'table' or type(r.start) ~= 'table' then
    return nil
  end
  local stop = r.end_ or r['end']
  if type(stop) ~= 'table' or type(r.start.row) ~= 'number' or type(stop.row) ~= 'number' then
    return nil
  end
  return r.start.row, r.start.col, stop.row, stop.col
end

--- Apply `kind` ('all' | 'word' | 'line') of a native item, then notify the server.
local function apply(buf, item, kind)
  local text = item.insert_text
  text = type(text) == 'table' and text.value or text
  if type(text) ~= 'string' then
    return
  end
  local cur = api.nvim_win_get_cursor(0)
  local row, col = cur[1] - 1, cur[2]
  local sr, sc, er, ec = range_of(item)
  if not sr then
    sr, sc, er, ec = row, col, row, col
  end
  local typed = ''
  if row > sr or (row == sr and col >= sc) then
    typed = table.concat(api.nvim_buf_get_text(buf, sr, sc, row, col, {}), '\n')
  end
  if text:sub(1, #typed) ~= typed then
    typed = ''
  elseif er < row or (er == row and ec < col) then
    er, ec = row, col
  end
  local head, rest = accept.split(text:sub(#typed + 1), kind)
  local lines = vim.split(typed .. head, '\n', { plain = true })
  api.nvim_buf_set_text(buf, sr, sc, er, ec, lines)
  api.nvim_win_set_cursor(0, { sr + #lines, (#lines == 1 and sc or 0) + #lines[#lines] })
  client.accepted(client.get(buf), buf, head, rest ~= '')
end

--- Mapping actions for `buf`; each returns true when it acted (else the key falls back).
function M.actions(buf)
  local function take(kind)
    return function()
      return vim.lsp.inline_completion.get({
        bufnr = buf,
        on_accept = function(item)
          apply(buf, item, kind)
        end,
      })
    end
  end
  local function shown()
    local ns = api.nvim_get_namespaces()['nvim.lsp.inline_completion']
    return ns ~= nil and #api.nvim_buf_get_extmarks(buf, ns, 0, -1, { limit = 1 }) > 0
  end
  local function select(count)
    return function()
      if not shown() then
        return false
      end
      vim.lsp.inline_completion.select({ bufnr = buf, count = count })
      return true
    end
  end
  return {
    accept = take('all'),
    accept_word = take('word'),
    accept_line = take('line'),
    next = select(1),
    prev = select(-1),
    dismiss = function()
      if not shown() then
        return false
      end
      -- No public "hide": switching the buffer's inline completion off and on drops the item.
      M.enable(buf, false)
      M.enable(buf, true)
      return true
    end,
  }
end

return M
