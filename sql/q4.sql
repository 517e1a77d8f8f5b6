-- Q4: the most popular category per age group (pin ⋈ user: pin_user.sql).
-- Posts of users without an age group take no part; ties go to the alphabetically first
-- category; results in byte order (+50 first).
WITH counts AS (
    SELECT age_group, category, COUNT(*) AS category_count
    FROM pin_user
    WHERE age_group IS NOT NULL AND category IS NOT NULL
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
