--- LSP positions <-> byte columns (pure functions).
---
--- Neovim indexes a line by bytes; LSP counts a position's `character` in the negotiated encoding: UTF-16
--- code units by default (a character outside the BMP is two), UTF-8 bytes or UTF-32 code points when the
--- client and server agree on one (`client.offset_encoding`). Invalid UTF-8 counts one unit per byte.

local M = {}

--- Byte length of the UTF-8 sequence starting with byte `b`, and the units it takes in `encoding`.
---@return integer bytes, integer units
local function char_at(line, i, encoding)
  local b = line:byte(i)
  local n = b < 0x80 and 1 or b >= 0xF0 and 4 or b >= 0xE0 and 3 or b >= 0xC0 and 2 or 1
  if i + n - 1 > #line then
    n = 1
  end
  if encoding == 'utf-8' then
    return n, n
  end
  if encoding == 'utf-16' and n == 4 then
    return n, 2
  end
  return n, 1
end

--- The LSP `character` of byte column `col` (0-based) in `line`.
---@param line string
---@param col integer
---@param encoding string 'utf-8'|'utf-16'|'utf-32'
---@return integer
function M.character(line, col, encoding)
  if encoding == 'utf-8' then
    return col
  end
  local i, units = 1, 0
  while i <= col and i <= #line do
    local bytes, width = char_at(line, i, encoding)
    i, units = i + bytes, units + width
  end
  return units
end

--- The byte column (0-based) of LSP `character` in `line`; past the end means the end (as LSP says), inside a
--- character (half a surrogate pair) means that character's start.
---@param line string
---@param character integer
---@param encoding string 'utf-8'|'utf-16'|'utf-32'
---@return integer
function M.byte_col(line, character, encoding)
  if encoding == 'utf-8' then
    return math.min(character, #line)
  end
  local i, units = 1, 0
  while i <= #line do
    local bytes, width = char_at(line, i, encoding)
    if units + width > character then
      return i - 1
    end
    i, units = i + bytes, units + width
  end
  return #line
end

return M
