-- wrk script: POST /v1/leads with a 364-byte-class Chinese lead, a unique phone
-- number and e-mail per request (so every request is a new lead, not a duplicate
-- and not a repeat inquiry merged into an open lead). The key: LF_BENCH_KEY (an intake
-- key made by bench/lib.sh), else LEADFLOW_ADMIN_KEY, else bench-key.
local counter = 0
-- LF_BENCH_COMPANIES=N (default 1): the leads name N companies, each with its own e-mail
-- domain, as build/bench/loadgen's 997; with 1 every lead is of one company and domain.
local companies = tonumber(os.getenv("LF_BENCH_COMPANIES") or "1") or 1
local thread_id = 0
local threads = {}

function setup(thread)
   thread:set("tid", #threads)
   table.insert(threads, thread)
end

function init(args)
   counter = 0
   math.randomseed(os.time() + (tid or 0) * 7919)
   base = math.random(10000000, 89999999)
end

function request()
   counter = counter + 1
   local phone = string.format("139%08d", (base + counter * 4 + (tid or 0)) % 100000000)
   local company, domain = "上海华东医疗器械有限公司", "example.com"
   if companies > 1 then -- as build/bench/loadgen: company k with its own e-mail domain
      local k = (base + counter * 4 + (tid or 0)) % companies
      company = string.format("上海华东医疗器械%03d有限公司", k)
      domain = string.format("hd%03d.example.cn", k)
   end
   local body = '{"name":"王芳","company":"' .. company .. '","phone":"' .. phone ..
      '","email":"wang.fang.' .. phone .. '@' .. domain .. '","budget":"50万","urgency":"高","industry":"medical",' ..
      '"region":"east","decision_maker":"是","need":"采购一批医用监护设备，希望下周安排演示",' ..
      '"source":"官网表单"}'
   return wrk.format("POST", "/v1/leads", {
      ["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. (os.getenv("LF_BENCH_KEY") or os.getenv("LEADFLOW_ADMIN_KEY") or "bench-key"),
   }, body)
end

-- LF_BENCH_LOG_ERRORS=1: print the status and body of every answer that is not 2xx (a
-- response() callback makes wrk read every body, so it is off by default).
if os.getenv("LF_BENCH_LOG_ERRORS") then
   function response(status, headers, body)
      if status < 200 or status > 299 then
         io.stderr:write(string.format("non-2xx %d %s\n", status, body))
      end
   end
end
