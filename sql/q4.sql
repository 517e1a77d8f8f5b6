-- Q4: the most popular category per age group (pin ⋈ user).
-- Groups: 18-24, 25-35, 36-50, +50 (ages below 18 or NULL have no group and take no part).
-- Ties go to the alphabetically first category; results in byte order (+50 first).
WITH posts AS (
    SELECT CASE
               WHEN u.age BETWEEN 18 AND 24 THEN '18-24'
               WHEN u.age BETWEEN 25 AND 35 THEN '25-35'
               WHEN u.age BETWEEN 36 AND 50 THEN '36-50'
               WHEN u.age > 50 THEN '+50'
           END AS age_group,
           p.category
    FROM pin p
    JOIN user u ON p.ind = u.ind
    WHERE p.category IS NOT NULL
),
counts AS (
    SELECT age_group, category, COUNT(*) AS category_count
    FROM posts
    WHERE age_group IS NOT NULL
    GROUP BY age_group, category
),
ranked AS (
    SELECT age_group, category, category_count,
           ROW_NUMBER() OVER (PARTITION BY age_group ORDER BY category_count DESC, category ASC) AS rank_in_group
    FROM counts
)
SELECT age_group, category, category_count
FROM ranked
WHERE rank_in_group = 1
ORDER BY age_group
