-- pin ⋈ geo on ind, with the columns Q1, Q2 and Q3a read: one row per post that has a
-- geolocation. Computed once per run and kept in memory while those questions run.
SELECT g.country,
       CAST(EXTRACT(YEAR FROM g.timestamp) AS INT) AS post_year,
       p.category,
       p.poster_name,
       p.follower_count
FROM pin p
JOIN geo g ON p.ind = g.ind
