-- Q2: the most popular category per year of the geo timestamp, years 2018–2022 (pin ⋈ geo:
-- pin_geo.sql). Ties go to the alphabetically first category; NULL categories take no part.
WITH counts AS (
    SELECT post_year, category, COUNT(*) AS category_count
    FROM pin_geo
    WHERE category IS NOT NULL AND post_year BETWEEN 2018 AND 2022
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
