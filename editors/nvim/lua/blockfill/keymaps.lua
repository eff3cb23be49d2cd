--- Buffer-local Insert-mode mappings that act only when a suggestion is shown.
---
--- Otherwise the key keeps its meaning: the mapping it had before (a buffer-local or global one, such as a
--- completion plugin's <Tab>) runs, or the key is inserted as typed. The mappings are plain Lua callbacks
--- (not <expr>), so an accept may edit the buffer directly.

local M = {}

local function feed(keys, remap)
  vim.api.nvim_feedkeys(vim.api.nvim_replace_termcodes(keys, true, true, true), remap and 'mi' or 'ni', false)
end

--- What the key did before we mapped it, as a function.
local function fallback_for(buf, lhs)
  local previous = vim.fn.maparg(lhs, 'i', false, true)
  if type(previous) ~= 'table' or vim.tbl_isempty(previous) then
    return function()
      feed(lhs, false)
    end
  end
  local remap = previous.noremap == 0
  return function()
    if previous.callback then
      local keys = previous.callback()
      if previous.expr == 1 and type(keys) == 'string' and keys ~= '' then
        feed(keys, remap)
      end
    elseif previous.expr == 1 then
      local keys = vim.api.nvim_eval(previous.rhs)
      if type(keys) == 'string' then
        feed(keys, remap)
      end
    else
      feed(previous.rhs, remap)
    end
  end
end

--- Map each `keymaps[name]` in `buf` to `actions[name]` (a function returning true when it acted).
---@param buf integer
---@param keymaps table<string, string|false>|false
---@param actions table<string, fun(): boolean>
---@return string[] the mapped keys, for unmap()
function M.map(buf, keymaps, actions)
  local mapped = {}
  if not keymaps then
    return mapped
  end
  for name, lhs in pairs(keymaps) do
    if lhs and actions[name] then
      local fallback = fallback_for(buf, lhs)
      vim.keymap.set('i', lhs, function()
        if not actions[name]() then
          fallback()
        end
      end, { buffer = buf, silent = true, desc = 'blockfill: ' .. name:gsub('_', ' ') })
      mapped[#mapped + 1] = lhs
    end
  end
  return mapped
end

function M.unmap(buf, keys)
  for _, lhs in ipairs(keys or {}) do
    pcall(vim.keymap.del, 'i', lhs, { buffer = buf })
  end
end

return M
