-- Q5: the median follower count per age group (pin ⋈ user), over posts with a follower count.
-- Exact: the middle value or the mean of the two middle values, as a DOUBLE.
WITH posts AS (
    SELECT CASE
               WHEN u.age BETWEEN 18 AND 24 THEN '18-24'
               WHEN u.age BETWEEN 25 AND 35 THEN '25-35'
               WHEN u.age BETWEEN 36 AND 50 THEN '36-50'
               WHEN u.age > 50 THEN '+50'
           END AS age_group,
           CAST(p.follower_count AS DOUBLE) AS follower_count
    FROM pin p
    JOIN user u ON p.ind = u.ind
    WHERE p.follower_count IS NOT NULL
)
SELECT age_group, median(follower_count) AS median_follower_count
FROM posts
WHERE age_group IS NOT NULL
GROUP BY age_group
ORDER BY age_group
