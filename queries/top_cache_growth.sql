-- Top caches by growth across the dumps of one release.
--
-- Input: a table or view `summaries`, one row per vmleak summary (Parquet,
-- schema 1); parameter $release, a kernel release.
-- Growth is measured between consecutive dumps of one boot — a boot is
-- (dump.hostname, dump.boot_time), its dumps ordered by dump.crash_time —
-- and summed per cache (name, object size) over every boot of the release.
-- An interval where either dump is partial is left out: a partial dump may
-- miss a cache's slabs, or the cache itself.
WITH caches AS (
    SELECT s.dump.hostname AS hostname, s.dump.boot_time AS boot_time,
           s.dump.crash_time AS crash_time, s.dump.file AS file,
           s.partial AS dump_partial, s.c.name AS name, s.c.object_size AS object_size,
           s.c.bytes AS bytes, s.c.allocated AS allocated, s.c.slabs AS slabs
    FROM (SELECT dump, partial, unnest(caches) AS c FROM summaries) AS s
    WHERE s.dump.release = $release
),
steps AS (
    SELECT name, object_size,
           bytes - lag(bytes) OVER w AS growth_bytes,
           allocated - lag(allocated) OVER w AS growth_objects,
           slabs - lag(slabs) OVER w AS growth_slabs,
           dump_partial OR lag(dump_partial) OVER w AS any_partial
    FROM caches
    WINDOW w AS (PARTITION BY hostname, boot_time, name, object_size ORDER BY crash_time, file)
)
SELECT name, object_size,
       CAST(sum(growth_bytes) AS BIGINT) AS growth_bytes,
       CAST(sum(growth_objects) AS BIGINT) AS growth_objects,
       CAST(sum(growth_slabs) AS BIGINT) AS growth_slabs,
       count(*) AS intervals
FROM steps
WHERE growth_bytes IS NOT NULL AND NOT any_partial
GROUP BY name, object_size
HAVING sum(growth_bytes) > 0
ORDER BY growth_bytes DESC, name, object_size
LIMIT 20;
