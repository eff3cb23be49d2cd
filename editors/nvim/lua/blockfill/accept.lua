--- How much of a suggestion a partial accept takes (pure functions, unit-tested without a server).
---
--- `text` is what the ghost shows: the part of the suggestion not yet in the buffer. Each function returns
--- the accepted head and the rest, `head .. rest == text`.

local M = {}

--- Word characters: letters, digits, `_` and any non-ASCII byte (so a UTF-8 letter is never split).
local WORD = '[%w_\128-\255]'

--- The next word: leading blanks, then a run of word characters or a run of other non-blank characters.
--- A suggestion that starts with a line break takes the break and the next line's indentation.
---@param text string
---@return string head, string rest
function M.word(text)
  local head = text:match('^\r?\n[ \t]*') or text:match('^[ \t]*')
  local i = #head + 1
  if i <= #text and head:find('\n') == nil then
    local c = text:sub(i, i)
    local run = c:match(WORD) and ('^' .. WORD .. '+') or '^[^%s%w_\128-\255]+'
    head = head .. text:match(run, i)
  end
  return head, text:sub(#head + 1)
end

--- The rest of the current line (without its line break). When the suggestion starts with a line break (its
--- first line is already complete), the break and the whole next line.
---@param text string
---@return string head, string rest
function M.line(text)
  local head = text:match('^[^\n]*')
  if head == '' or head == '\r' then
    head = text:match('^\r?\n[^\n]*') or text
  end
  return head, text:sub(#head + 1)
end

--- `kind`: 'all' | 'word' | 'line'.
---@return string head, string rest
function M.split(text, kind)
  if kind == 'word' then
    return M.word(text)
  elseif kind == 'line' then
    return M.line(text)
  end
  return text, ''
end

return M
