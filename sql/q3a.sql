-- Q3a: per country, the poster with the most followers (pin ⋈ geo).
-- Posts with a NULL poster_name or follower_count take no part; ties go to the alphabetically
-- first poster_name.
WITH ranked AS (
    SELECT g.country, p.poster_name, p.follower_count,
           ROW_NUMBER() OVER (PARTITION BY g.country ORDER BY p.follower_count DESC, p.poster_name ASC) AS rank_in_country
    FROM pin p
    JOIN geo g ON p.ind = g.ind
    WHERE g.country IS NOT NULL AND p.poster_name IS NOT NULL AND p.follower_count IS NOT NULL
)
SELECT country, poster_name, follower_count
FROM ranked
WHERE rank_in_country = 1
ORDER BY country
