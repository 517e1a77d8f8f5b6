-- Q1: the most popular category per country (pin ⋈ geo: pin_geo.sql).
-- Ties go to the alphabetically first category; NULL countries and categories take no part.
WITH counts AS (
    SELECT country, category, COUNT(*) AS category_count
    FROM pin_geo
    WHERE country IS NOT NULL AND category IS NOT NULL
    GROUP BY country, category
),
ranked AS (
    SELECT country, category, category_count,
           ROW_NUMBER() OVER (PARTITION BY country ORDER BY category_count DESC, category ASC) AS rank_in_country
    FROM counts
)
SELECT country, category, category_count
FROM ranked
WHERE rank_in_country = 1
ORDER BY country
