--- Ghost text: a suggestion drawn with one extmark at the cursor.
---
--- The first line goes inline after the cursor (`virt_text_pos = 'inline'`, Neovim 0.10+), the other lines
--- below the cursor's line as virtual lines (`virt_lines`). Nothing is inserted into the buffer until an
--- accept. Tabs are drawn as spaces ('tabstop'): virtual text does not expand them.

local M = {}

M.ns = vim.api.nvim_create_namespace('blockfill.ghost')
M.hint_group = 'BlockfillHint'

local function display(s, tabstop)
  return (s:gsub('\r$', ''):gsub('\t', string.rep(' ', tabstop)))
end

--- Draw `text` at (row, col) (0-based row, byte col) in `buf`, replacing any ghost there.
---@param buf integer
---@param row integer
---@param col integer
---@param text string
---@param opts {hl_group: string, hint: string?}
function M.show(buf, row, col, text, opts)
  M.clear(buf)
  local tabstop = vim.bo[buf].tabstop
  local lines = vim.split(text, '\n', { plain = true })
  local extmark = { hl_mode = 'combine', right_gravity = true }
  local first = display(lines[1], tabstop)
  local rest = {}
  for i = 2, #lines do
    rest[#rest + 1] = { { display(lines[i], tabstop), opts.hl_group } }
  end
  local hint = opts.hint and { opts.hint, M.hint_group } or nil
  if #rest > 0 then
    extmark.virt_lines = rest
    if hint then
      table.insert(rest[#rest], hint)
    end
  end
  local chunks = {}
  if first ~= '' then
    chunks[1] = { first, opts.hl_group }
  end
  if hint and #rest == 0 then
    chunks[#chunks + 1] = hint
  end
  if #chunks > 0 then
    extmark.virt_text = chunks
    extmark.virt_text_pos = 'inline'
  end
  vim.api.nvim_buf_set_extmark(buf, M.ns, row, col, extmark)
end

function M.clear(buf)
  if vim.api.nvim_buf_is_valid(buf) then
    vim.api.nvim_buf_clear_namespace(buf, M.ns, 0, -1)
  end
end

--- What the ghost shows in `buf`, read back from the extmark (hint left out), or nil if none. For
--- statuslines and tests: it reads what Neovim will draw, not the plugin's state.
---@param buf integer
---@return string?, integer?, integer? text, row, col
function M.read(buf)
  local marks = vim.api.nvim_buf_get_extmarks(buf, M.ns, 0, -1, { details = true })
  local mark = marks[1]
  if not mark then
    return nil
  end
  local details = mark[4]
  local function join(chunks)
    local parts = {}
    for _, chunk in ipairs(chunks or {}) do
      if chunk[2] ~= M.hint_group then
        parts[#parts + 1] = chunk[1]
      end
    end
    return table.concat(parts)
  end
  local lines = { join(details.virt_text) }
  for _, chunks in ipairs(details.virt_lines or {}) do
    lines[#lines + 1] = join(chunks)
  end
  return table.concat(lines, '\n'), mark[2], mark[3]
end

return M
