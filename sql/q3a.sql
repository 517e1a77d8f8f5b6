-- Q3a: per country, the poster with the most followers (pin ⋈ geo: pin_geo.sql).
-- Posts with a NULL poster_name or follower_count take no part; ties go to the alphabetically
-- first poster_name.
WITH ranked AS (
    SELECT country, poster_name, follower_count,
           ROW_NUMBER() OVER (PARTITION BY country ORDER BY follower_count DESC, poster_name ASC) AS rank_in_country
    FROM pin_geo
    WHERE country IS NOT NULL AND poster_name IS NOT NULL AND follower_count IS NOT NULL
)
SELECT country, poster_name, follower_count
FROM ranked
WHERE rank_in_country = 1
ORDER BY country
