-- init.lua for the real terminal UI test (tests/editors/test_nvim.py, in tmux): the plugin as a user sets it up.
-- Environment: BLOCKFILL_REPO, BLOCKFILL_CMD, BLOCKFILL_WORK (the ready marker goes there).
local work = os.getenv('BLOCKFILL_WORK')
vim.o.swapfile = false
vim.o.termguicolors = true -- as most users have; the ghost's colour is then visible in the capture
vim.o.shortmess = vim.o.shortmess .. 'I' -- no intro screen
vim.opt.rtp:prepend(os.getenv('BLOCKFILL_REPO') .. '/editors/nvim')
require('blockfill').setup({
  cmd = { os.getenv('BLOCKFILL_CMD'), 'serve' },
  -- drop_syntax_errors = false: the weak model's blocks rarely parse, and the screen test needs one
  settings = {
    model = 'blockfill-tiny', device = 'cpu', threads = 1, seed = 5, drop_syntax_errors = false,
    acceptanceLog = work .. '/accepted.jsonl',
  },
})
-- Tell the test when the model is loaded (the server's blockfill/status notification).
vim.api.nvim_create_autocmd('User', {
  pattern = 'BlockfillStatus',
  callback = function(args)
    if args.data.state == 'ready' then
      vim.fn.writefile({ 'ready' }, work .. '/ready')
    end
  end,
})
