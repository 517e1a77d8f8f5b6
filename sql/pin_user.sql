-- pin ⋈ user on ind, with the columns Q4, Q5, Q7 and Q8 read: one row per post that has a user.
-- Computed once per run and kept in memory while those questions run.
-- Age groups: 18-24, 25-35, 36-50, +50; ages below 18 or NULL have no group (NULL).
SELECT CASE
           WHEN u.age BETWEEN 18 AND 24 THEN '18-24'
           WHEN u.age BETWEEN 25 AND 35 THEN '25-35'
           WHEN u.age BETWEEN 36 AND 50 THEN '36-50'
           WHEN u.age > 50 THEN '+50'
       END AS age_group,
       CAST(EXTRACT(YEAR FROM u.date_joined) AS INT) AS join_year,
       p.category,
       p.follower_count
FROM pin p
JOIN user u ON p.ind = u.ind
