-- Q2: the most popular category per year of the geo timestamp, years 2018–2022 (pin ⋈ geo).
-- Ties go to the alphabetically first category; NULL categories take no part.
WITH posts AS (
    SELECT CAST(EXTRACT(YEAR FROM g.timestamp) AS INT) AS post_year, p.category
    FROM pin p
    JOIN geo g ON p.ind = g.ind
    WHERE p.category IS NOT NULL
),
counts AS (
    SELECT post_year, category, COUNT(*) AS category_count
    FROM posts
    WHERE post_year BETWEEN 2018 AND 2022
    GROUP BY post_year, category
),
ranked AS (
    SELECT post_year, category, category_count,
           ROW_NUMBER() OVER (PARTITION BY post_year ORDER BY category_count DESC, category ASC) AS rank_in_year
    FROM counts
)
SELECT post_year, category, category_count
FROM ranked
WHERE rank_in_year = 1
ORDER BY post_year
