-- Q7: the median follower count by the year users joined, 2015–2020 (pin ⋈ user), over posts
-- with a follower count. Exact, as a DOUBLE.
WITH posts AS (
    SELECT CAST(EXTRACT(YEAR FROM u.date_joined) AS INT) AS post_year,
           CAST(p.follower_count AS DOUBLE) AS follower_count
    FROM pin p
    JOIN user u ON p.ind = u.ind
    WHERE p.follower_count IS NOT NULL
)
SELECT post_year, median(follower_count) AS median_follower_count
FROM posts
WHERE post_year BETWEEN 2015 AND 2020
GROUP BY post_year
ORDER BY post_year
