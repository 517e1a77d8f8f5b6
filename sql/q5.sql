-- Q5: the median follower count per age group (pin ⋈ user: pin_user.sql), over posts with a
-- follower count. Exact: the middle value or the mean of the two middle values, as a DOUBLE.
SELECT age_group, median(CAST(follower_count AS DOUBLE)) AS median_follower_count
FROM pin_user
WHERE age_group IS NOT NULL AND follower_count IS NOT NULL
GROUP BY age_group
ORDER BY age_group
