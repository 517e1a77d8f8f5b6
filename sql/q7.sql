-- Q7: the median follower count by the year users joined, 2015–2020 (pin ⋈ user:
-- pin_user.sql), over posts with a follower count. Exact, as a DOUBLE.
SELECT join_year AS post_year, median(CAST(follower_count AS DOUBLE)) AS median_follower_count
FROM pin_user
WHERE join_year BETWEEN 2015 AND 2020 AND follower_count IS NOT NULL
GROUP BY join_year
ORDER BY post_year
