-- wrk script: POST visitor messages round-robin over pre-started conversations.
-- conversations.lua (written by scripts/load.sh) defines `conversations = {{id=..., token=...}, ...}`.
dofile(os.getenv("KEFU_LOAD_CONVERSATIONS"))

local questions = {
  "怎么申请退货", "退款一般几天到账", "发票在哪里开", "运费怎么算的", "忘记登录密码了",
  "优惠券为什么用不了", "快递好几天没更新了", "可以改收货地址吗", "会员有什么好处", "东西坏了能保修吗",
  "货到付款支持吗", "怎么取消订单", "積分怎麼用", "ＡＰＰ里怎么查物流", "退货地址是哪里",
}

local counter = 0
request = function()
  counter = counter + 1
  local c = conversations[(counter % #conversations) + 1]
  local q = questions[(counter % #questions) + 1]
  local body = '{"text":"' .. q .. '"}'
  local headers = { ["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. c.token }
  return wrk.format("POST", "/api/v1/conversations/" .. c.id .. "/messages", headers, body)
end
