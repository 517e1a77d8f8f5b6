-- Q8: the median follower count by age group and join year 2015–2020 (pin ⋈ user), over posts
-- with a follower count. Exact, as a DOUBLE; sorted by age group (byte order), then year.
WITH posts AS (
    SELECT CASE
               WHEN u.age BETWEEN 18 AND 24 THEN '18-24'
               WHEN u.age BETWEEN 25 AND 35 THEN '25-35'
               WHEN u.age BETWEEN 36 AND 50 THEN '36-50'
               WHEN u.age > 50 THEN '+50'
           END AS age_group,
           CAST(EXTRACT(YEAR FROM u.date_joined) AS INT) AS post_year,
           CAST(p.follower_count AS DOUBLE) AS follower_count
    FROM pin p
    JOIN user u ON p.ind = u.ind
    WHERE p.follower_count IS NOT NULL
)
SELECT age_group, post_year, median(follower_count) AS median_follower_count
FROM posts
WHERE age_group IS NOT NULL AND post_year BETWEEN 2015 AND 2020
GROUP BY age_group, post_year
ORDER BY age_group, post_year
