-- Q8: the median follower count by age group and join year 2015–2020 (pin ⋈ user:
-- pin_user.sql), over posts with a follower count. Exact, as a DOUBLE; sorted by age group
-- (byte order), then year.
SELECT age_group, join_year AS post_year, median(CAST(follower_count AS DOUBLE)) AS median_follower_count
FROM pin_user
WHERE age_group IS NOT NULL AND join_year BETWEEN 2015 AND 2020 AND follower_count IS NOT NULL
GROUP BY age_group, join_year
ORDER BY age_group, post_year
