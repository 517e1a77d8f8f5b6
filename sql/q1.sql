-- Q1: the most popular category per country (pin ⋈ geo on ind).
-- Ties go to the alphabetically first category; NULL countries and categories take no part.
WITH counts AS (
    SELECT g.country, p.category, COUNT(*) AS category_count
    FROM pin p
    JOIN geo g ON p.ind = g.ind
    WHERE g.country IS NOT NULL AND p.category IS NOT NULL
    GROUP BY g.country, p.category
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
