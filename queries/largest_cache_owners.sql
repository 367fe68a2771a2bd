-- Modules most often owning the largest cache.
--
-- Input: a table or view `summaries`, one row per vmleak summary (Parquet,
-- schema 1).
-- In each dump, of the caches a module holds objects of or owns
-- (caches[].owners not empty), take the largest by bytes (slab memory;
-- ties by name); count, per module owning it, the dumps where it was that
-- cache. Generic caches nobody is known to own (no allocation tracks) do
-- not count: this asks which module's memory dominates, not which cache.
WITH owned AS (
    SELECT s.dump.hostname AS hostname, s.dump.crash_time AS crash_time, s.dump.file AS file,
           s.c.name AS cache, s.c.bytes AS bytes, s.c.owners AS owners
    FROM (SELECT dump, unnest(caches) AS c FROM summaries) AS s
    WHERE len(s.c.owners) > 0
),
largest AS (
    SELECT *, row_number() OVER (PARTITION BY hostname, crash_time, file ORDER BY bytes DESC, cache) AS rank
    FROM owned
)
SELECT module, count(*) AS dumps, string_agg(DISTINCT cache, ',' ORDER BY cache) AS caches
FROM (SELECT unnest(owners) AS module, cache FROM largest WHERE rank = 1)
GROUP BY module
ORDER BY dumps DESC, module;
