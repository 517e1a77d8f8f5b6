-- Q3b: the single country whose top poster (Q3a's answer, read as the table q3a) has the most
-- followers. Ties go to the alphabetically first country.
SELECT country, follower_count
FROM q3a
ORDER BY follower_count DESC, country ASC
LIMIT 1
