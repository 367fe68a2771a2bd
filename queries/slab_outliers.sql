-- Dumps whose slab memory is an outlier among the dumps of their release.
--
-- Input: a table or view `summaries`, one row per vmleak summary (Parquet,
-- schema 1).
-- A dump's slab memory is the sum of its caches' bytes. Within a release
-- (releases differ in what they allocate) it is an outlier when it lies
-- more than 3.5 scaled median absolute deviations from the release's
-- median (the robust z-score of Iglewicz and Hoaglin): a few huge dumps do
-- not hide themselves by moving a mean. Releases with fewer than 3
-- complete dumps, and partial dumps, are left out.
WITH dumps AS (
    SELECT s.dump.file AS file, s.dump.hostname AS hostname, s.dump.release AS release,
           s.dump.crash_time AS crash_time, CAST(sum(s.c.bytes) AS BIGINT) AS slab_bytes
    FROM (SELECT dump, partial, unnest(caches) AS c FROM summaries) AS s
    WHERE NOT s.partial
    GROUP BY ALL
),
releases AS (
    SELECT release, median(slab_bytes) AS median_bytes, mad(slab_bytes) AS mad_bytes, count(*) AS dumps
    FROM dumps
    GROUP BY release
)
SELECT d.file, d.hostname, d.release, d.crash_time, d.slab_bytes,
       r.median_bytes, r.mad_bytes,
       (d.slab_bytes - r.median_bytes) / (1.4826 * r.mad_bytes) AS robust_z
FROM dumps AS d JOIN releases AS r USING (release)
WHERE r.dumps >= 3 AND r.mad_bytes > 0
  AND abs(d.slab_bytes - r.median_bytes) > 3.5 * 1.4826 * r.mad_bytes
ORDER BY abs(robust_z) DESC, d.file;
