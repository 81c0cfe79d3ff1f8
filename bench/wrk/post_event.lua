-- wrk's request script for the benchmarks (bench/load.py runs wrk -s with this file).
-- POSTs a samcart.product_purchased event to BENCH_PATH with the bearer token BENCH_TOKEN. BENCH_PRODUCTS > 0
-- picks each event's product at random among p1..pN (the rules scenario); otherwise every event names product 444.
-- Each request names a new buyer (BENCH_RUN, thread, counter), so no event repeats another (nothing is deduplicated
-- away) and the fake Circle's record tells every event's call apart.
local path = os.getenv("BENCH_PATH") or "/api/v1/events"
local token = os.getenv("BENCH_TOKEN") or ""
local products = tonumber(os.getenv("BENCH_PRODUCTS") or "0")
local run = os.getenv("BENCH_RUN") or "0"  -- a new one per wrk run: no buyer repeats one of an earlier run
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}
local threads = 0
local counter = 0

function setup(thread)
    threads = threads + 1
    thread:set("thread_id", threads)
end

function init(args)
    math.randomseed(os.time() + (thread_id or 0))
end

function request()
    counter = counter + 1
    local product = "444"
    if products > 0 then
        product = "p" .. math.random(products)
    end
    local body = string.format(
        '{"trigger":"samcart.product_purchased","payload":{"customer":{"email":"buyer-%s-%d-%d@example.com"},"product":{"id":"%s"}}}',
        run, thread_id or 0, counter, product)
    return wrk.format("POST", path, headers, body)
end
