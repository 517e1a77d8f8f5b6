-- Q6: how many distinct users (same user_name and date_joined) joined each year 2015–2020
-- (user alone). NULL user_names take no part.
WITH users AS (
    SELECT DISTINCT user_name, date_joined
    FROM user
    WHERE user_name IS NOT NULL
),
years AS (
    SELECT CAST(EXTRACT(YEAR FROM date_joined) AS INT) AS post_year
    FROM users
)
SELECT post_year, COUNT(*) AS number_users_joined
FROM years
WHERE post_year BETWEEN 2015 AND 2020
GROUP BY post_year
ORDER BY post_year
