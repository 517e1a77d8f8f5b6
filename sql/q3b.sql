-- Q3b: the single country whose top poster (as in Q3a) has the most followers.
-- Ties go to the alphabetically first country.
WITH ranked AS (
    SELECT g.country, p.poster_name, p.follower_count,
           ROW_NUMBER() OVER (PARTITION BY g.country ORDER BY p.follower_count DESC, p.poster_name ASC) AS rank_in_country
    FROM pin p
    JOIN geo g ON p.ind = g.ind
    WHERE g.country IS NOT NULL AND p.poster_name IS NOT NULL AND p.follower_count IS NOT NULL
)
SELECT country, follower_count
FROM ranked
WHERE rank_in_country = 1
ORDER BY follower_count DESC, country ASC
LIMIT 1
