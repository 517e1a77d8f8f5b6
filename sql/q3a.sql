-- Q3a: per country, the poster with the most followers (pin ⋈ geo: pin_geo.sql).
-- Posts with a NULL poster_name or follower_count take no part; ties go to the alphabetically
-- first poster_name. Written as two aggregations (the top count per country, then the first
-- name with it) rather than a ranking, which would sort every post.
WITH posts AS (
    SELECT country, poster_name, follower_count
    FROM pin_geo
    WHERE country IS NOT NULL AND poster_name IS NOT NULL AND follower_count IS NOT NULL
),
top AS (
    SELECT country, MAX(follower_count) AS follower_count
    FROM posts
    GROUP BY country
)
SELECT t.country, MIN(p.poster_name) AS poster_name, t.follower_count
FROM top t
JOIN posts p ON p.country = t.country AND p.follower_count = t.follower_count
GROUP BY t.country, t.follower_count
ORDER BY t.country
