"""GET /metrics, in the Prometheus text format (docs/operators.md, *Metrics*).

- ``counters``: what Hookyard counts as it works: in Redis for what any process on any machine does (runs, events,
  outbound calls), in-process (prometheus_client, multiprocess mode under gunicorn) for what a web process serves.
- ``collect``: what is read when /metrics is scraped (queue depth and age, runs by status, quota used, and the Redis
  counters), so that one web process's answer is complete whatever the number of workers.
- ``view``: the route and its bearer token (HOOKYARD_METRICS_TOKEN).

Kept light on purpose: hookyard.usage, hookyard.jobs and hookyard.emit import ``counters``, and importing it runs
this file first.
"""
