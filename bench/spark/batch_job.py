"""An independent PySpark implementation of the batch job (SPEC section 6).

Owns: reading the sink's JSON files of `<id>.pin`, `<id>.geo`, `<id>.user` from a local lake
folder (the layout of SPEC section 5), cleaning them, keeping the first received row per `ind`,
answering Q1-Q8 and writing them as CSV files. Fed by: the sink (or any folder in its layout).
Feeds: `compare.py`, which checks pinpipe's own batch answers against these, and the batch
benchmark (`pinpipe bench batch`), which times this job as the Databricks-style baseline.

It is written from SPEC alone, on purpose without looking at pinpipe's Rust cleaning or SQL, so
the two can catch each other's mistakes. Types are checked exactly: every line is parsed into a
Spark VARIANT (`try_parse_json`), so a string where a number belongs (or the reverse) is seen as
the wrong JSON type instead of being coerced the way Spark's JSON reader does.

Usage: python batch_job.py --lake DIR --id pinterest --out DIR [--master local[2]]
"""

import argparse
import csv
import glob
import json
import os
import sys
import time

START = time.monotonic()

# Placeholders meaning "no data" (SPEC section 1), per column, matched exactly.
PLACEHOLDERS = {
    "title": ["No Title Data Available"],
    "description": [
        "No description available Story format",
        "No description available",
        "Untitled",
    ],
    "poster_name": ["User Info Error"],
    "follower_count": ["User Info Error"],
    "tag_list": ["N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e"],
    "image_src": ["Image src error."],
}

# Expected JSON type of every field of each topic: "int", "float", "text" or "datetime".
FIELDS = {
    "pin": {
        "index": "int", "unique_id": "text", "title": "text", "description": "text",
        "poster_name": "text", "follower_count": "text", "tag_list": "text",
        "is_image_or_video": "text", "image_src": "text", "downloaded": "int",
        "save_location": "text", "category": "text",
    },
    "geo": {
        "ind": "int", "timestamp": "datetime", "latitude": "float", "longitude": "float",
        "country": "text",
    },
    "user": {
        "ind": "int", "first_name": "text", "last_name": "text", "age": "int",
        "date_joined": "datetime",
    },
}
KEY = {"pin": "index", "geo": "ind", "user": "ind"}
DATETIMES = {"geo": ["timestamp"], "user": ["date_joined"]}

QUERIES = ["q1", "q2", "q3a", "q3b", "q4", "q5", "q6", "q7", "q8"]


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lake", required=True, help="local lake folder (holds topics/...)")
    parser.add_argument("--id", default="pinterest", help="pipeline id")
    parser.add_argument("--out", required=True, help="results folder")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--tables", action="store_true",
                        help="also write the cleaned tables as <out>/pin.parquet, geo.parquet, user.parquet "
                             "(Spark folders of one part file), for compare.py to check row by row")
    return parser.parse_args(argv)


def sql_str(text):
    """A Spark SQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def type_of(field):
    """SQL: the variant type name of `field` (NULL when missing, 'VOID' for JSON null)."""
    return f"schema_of_variant(variant_get(v, '$.{field}', 'variant'))"


def type_ok(kind, t):
    """SQL: true when the type name `t` is acceptable for a field of `kind` (null is fine)."""
    is_null = f"({t} IS NULL OR {t} = 'VOID')"
    is_int = f"({t} IN ('BIGINT', 'INT', 'SMALLINT', 'TINYINT') OR {t} RLIKE '^DECIMAL\\\\([0-9]+,0\\\\)$')"
    if kind == "int":
        return f"({is_null} OR {is_int})"
    if kind == "float":
        return f"({is_null} OR {is_int} OR {t} RLIKE '^DECIMAL' OR {t} IN ('DOUBLE', 'FLOAT'))"
    return f"({is_null} OR {t} = 'STRING')"


def text(field, column=None):
    """SQL: a text field, '' and this column's placeholders turned into NULL."""
    value = f"try_variant_get(v, '$.{field}', 'string')"
    nulls = [""] + PLACEHOLDERS.get(column or field, [])
    listed = ", ".join(sql_str(p) for p in nulls)
    return f"CASE WHEN {value} IN ({listed}) THEN NULL ELSE {value} END"


def datetime_sql(field):
    """SQL: `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DDTHH:MM:SS` as a timestamp without time zone."""
    value = f"try_variant_get(v, '$.{field}', 'string')"
    return (
        f"CASE WHEN {value} RLIKE '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}[ T][0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}}$' "
        f"THEN try_to_timestamp(translate({value}, 'T', ' '), 'yyyy-MM-dd HH:mm:ss') END"
    )


def read_lines(spark, lake, topic):
    """Every non-empty line of the topic's sink files with (partition, start offset, line number)."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import LongType, StringType, StructField, StructType

    pattern = os.path.join(lake, "topics", topic, "partition=*", "*.json")
    paths = sorted(glob.glob(pattern))
    schema = StructType([
        StructField("part", LongType()), StructField("start", LongType()),
        StructField("line_no", LongType()), StructField("line", StringType()),
    ])
    if not paths:
        return spark.createDataFrame([], schema)
    files = spark.read.text(paths, wholetext=True)
    name = F.col("_metadata.file_name")
    # `<topic>+<partition>+<start offset>.json`; a '+' may come URL-encoded.
    plus = "(?:\\+|%2B)"
    lines = files.select(
        F.regexp_extract(name, f"{plus}([0-9]+){plus}([0-9]+)\\.json$", 1).cast("bigint").alias("part"),
        F.regexp_extract(name, f"{plus}([0-9]+){plus}([0-9]+)\\.json$", 2).cast("bigint").alias("start"),
        F.posexplode(F.split(F.col("value"), "\n")).alias("line_no", "line"),
    )
    return lines.where(F.col("line") != "").select(
        "part", "start", F.col("line_no").cast("bigint").alias("line_no"), "line")


def parsed(spark, lines, table):
    """Adds the reject reason (NULL for a good record) and the variant `v` of each line."""
    lines.createOrReplaceTempView(f"raw_{table}")
    checks = []
    for field, kind in FIELDS[table].items():
        checks.append(f"WHEN NOT {type_ok(kind, type_of(field))} THEN 'wrong JSON type: {field}'")
    key = KEY[table]
    checks.append(
        f"WHEN try_variant_get(v, '$.{key}', 'bigint') IS NULL THEN 'missing or invalid {key}'")
    for field in DATETIMES.get(table, []):
        checks.append(f"WHEN {datetime_sql(field)} IS NULL THEN 'missing, empty or unparseable {field}'")
    if table == "user":
        checks.append("WHEN variant_get(v, '$.age', 'variant') IS NOT NULL "
                      "AND try_variant_get(v, '$.age', 'int') IS NULL "
                      "AND schema_of_variant(variant_get(v, '$.age', 'variant')) <> 'VOID' "
                      "THEN 'age out of range'")
    reason = (
        "CASE WHEN v IS NULL THEN 'not JSON' "
        "WHEN NOT schema_of_variant(v) LIKE 'OBJECT%' THEN 'not a JSON object' "
        + " ".join(checks) + " END"
    )
    return spark.sql(
        f"SELECT part, start, line_no, line, v, {reason} AS reason "
        f"FROM (SELECT *, try_parse_json(line) AS v FROM raw_{table})"
    )


def follower_count_sql():
    """SQL: follower_count text -> bigint with exact decimal arithmetic (text digit shifting).

    trim; `<digits>[.<digits>][k|M]`; the suffix shifts the decimal point 3 or 6 places; the
    remaining fraction rounds half away from zero (all values are non-negative, so: first
    fractional digit >= 5 rounds up). Anything else, placeholders and overflow: NULL.
    """
    raw = "try_variant_get(v, '$.follower_count', 'string')"
    trimmed = f"regexp_replace({raw}, '^\\\\p{{IsWhite_Space}}+|\\\\p{{IsWhite_Space}}+$', '')"
    rx = "'^([0-9]+)(?:\\\\.([0-9]+))?([kM]?)$'"
    return f"""
      CASE WHEN {raw} IN ('User Info Error') THEN NULL
           WHEN {trimmed} RLIKE {rx} THEN
             try_add(
               try_cast(concat(ip, substr(fpp, 1, shift)) AS bigint),
               CASE WHEN substr(fpp, shift + 1, 1) >= '5' THEN 1 ELSE 0 END)
      END
    """, trimmed, rx


def clean(spark, df, table):
    """The cleaned columns of every parsed line, with its ordering columns and reject reason
    (before keeping one per ind). Rejected lines get NULLs: every extraction is a `try_`."""
    df.createOrReplaceTempView(f"ok_{table}")
    order = "part, start, line_no, reason"
    if table == "pin":
        fc, trimmed, rx = follower_count_sql()
        return spark.sql(f"""
          SELECT {order},
                 try_variant_get(v, '$.index', 'bigint') AS ind,
                 {text('unique_id')} AS unique_id,
                 {text('title')} AS title,
                 {text('description')} AS description,
                 {fc} AS follower_count,
                 {text('poster_name')} AS poster_name,
                 {text('tag_list')} AS tag_list,
                 {text('is_image_or_video')} AS is_image_or_video,
                 {text('image_src')} AS image_src,
                 nullif(CASE WHEN startswith(sl, 'Local save in ') THEN substr(sl, 15) ELSE sl END, '')
                   AS save_location,
                 {text('category')} AS category,
                 (try_variant_get(v, '$.follower_count', 'string') IS NOT NULL
                   AND try_variant_get(v, '$.follower_count', 'string') NOT IN ('', 'User Info Error')
                   AND NOT {trimmed} RLIKE {rx}) AS follower_count_invalid
          FROM (
            SELECT *,
                   regexp_extract({trimmed}, {rx}, 1) AS ip,
                   rpad(regexp_extract({trimmed}, {rx}, 2),
                        greatest(length(regexp_extract({trimmed}, {rx}, 2)), shift), '0') AS fpp,
                   {text('save_location')} AS sl
            FROM (
              SELECT *, CASE regexp_extract({trimmed}, {rx}, 3) WHEN 'k' THEN 3 WHEN 'M' THEN 6 ELSE 0 END
                          AS shift
              FROM ok_{table}))
        """)
    if table == "geo":
        return spark.sql(f"""
          SELECT {order}, false AS follower_count_invalid,
                 try_variant_get(v, '$.ind', 'bigint') AS ind,
                 {text('country')} AS country,
                 array(try_variant_get(v, '$.latitude', 'double'), try_variant_get(v, '$.longitude', 'double'))
                   AS coordinates,
                 {datetime_sql('timestamp')} AS timestamp
          FROM ok_{table}
        """)
    return spark.sql(f"""
      SELECT {order}, false AS follower_count_invalid,
             try_variant_get(v, '$.ind', 'bigint') AS ind,
             concat({text('first_name')}, ' ', {text('last_name')}) AS user_name,
             try_variant_get(v, '$.age', 'int') AS age,
             {datetime_sql('date_joined')} AS date_joined
      FROM ok_{table}
    """)


def first_per_ind(spark, df, table):
    """Keeps the first received row per ind: by partition, file start offset, line number."""
    df.createOrReplaceTempView(f"all_{table}")
    rows = spark.sql(f"""
      SELECT * FROM (
        SELECT *, row_number() OVER (PARTITION BY ind ORDER BY part, start, line_no) AS rn
        FROM all_{table})
      WHERE rn = 1
    """).drop("rn", "part", "start", "line_no")
    return rows


AGE_GROUP = """
  CASE WHEN age BETWEEN 18 AND 24 THEN '18-24'
       WHEN age BETWEEN 25 AND 35 THEN '25-35'
       WHEN age BETWEEN 36 AND 50 THEN '36-50'
       WHEN age > 50 THEN '+50' END
"""


def top_category(source, key, key_alias=None):
    """SQL: the most popular category per `key` (ties: alphabetically first)."""
    alias = key_alias or key
    return f"""
      SELECT {alias}, category, category_count FROM (
        SELECT {alias}, category, category_count,
               row_number() OVER (PARTITION BY {alias} ORDER BY category_count DESC, category ASC) AS rn
        FROM (SELECT {key} AS {alias}, category, count(*) AS category_count
              FROM {source}
              WHERE {key} IS NOT NULL AND category IS NOT NULL
              GROUP BY {key}, category))
      WHERE rn = 1 ORDER BY {alias}
    """


def median(source, keys, where):
    """SQL: the exact median of follower_count per `keys` (the middle value or the mean of the
    two middle values, computed in decimal, then as double)."""
    key_list = ", ".join(keys)
    return f"""
      SELECT {key_list},
             CAST((CAST(element_at(s, CAST((n + 1) DIV 2 AS INT)) AS DECIMAL(21, 1))
                 + CAST(element_at(s, CAST((n + 2) DIV 2 AS INT)) AS DECIMAL(21, 1))) / 2 AS DOUBLE)
               AS median_follower_count
      FROM (SELECT {key_list}, sort_array(collect_list(follower_count)) AS s, count(*) AS n
            FROM {source}
            WHERE follower_count IS NOT NULL AND {where}
            GROUP BY {key_list})
      ORDER BY {key_list}
    """


def queries(spark):
    """Q1-Q8 of SPEC section 6 over the views `pin`, `geo`, `user`."""
    spark.sql("CREATE OR REPLACE TEMP VIEW pin_geo AS "
              "SELECT p.*, g.country, year(g.timestamp) AS geo_year FROM pin p JOIN geo g ON p.ind = g.ind")
    spark.sql(f"CREATE OR REPLACE TEMP VIEW pin_user AS "
              f"SELECT p.*, u.user_name, u.age, {AGE_GROUP} AS age_group, year(u.date_joined) AS join_year "
              f"FROM pin p JOIN user u ON p.ind = u.ind")
    q = {}
    q["q1"] = top_category("pin_geo", "country")
    q["q2"] = top_category("(SELECT * FROM pin_geo WHERE geo_year BETWEEN 2018 AND 2022)",
                           "geo_year", "post_year")
    q["q3a"] = """
      SELECT country, poster_name, follower_count FROM (
        SELECT country, poster_name, follower_count,
               row_number() OVER (PARTITION BY country ORDER BY follower_count DESC, poster_name ASC) AS rn
        FROM pin_geo
        WHERE country IS NOT NULL AND poster_name IS NOT NULL AND follower_count IS NOT NULL)
      WHERE rn = 1 ORDER BY country
    """
    q["q4"] = top_category("pin_user", "age_group")
    q["q5"] = median("pin_user", ["age_group"], "age_group IS NOT NULL")
    q["q6"] = """
      SELECT year(date_joined) AS post_year, count(*) AS number_users_joined
      FROM (SELECT DISTINCT user_name, date_joined FROM user
            WHERE user_name IS NOT NULL AND year(date_joined) BETWEEN 2015 AND 2020)
      GROUP BY year(date_joined) ORDER BY post_year
    """
    q["q7"] = median("(SELECT join_year AS post_year, follower_count FROM pin_user)", ["post_year"],
                     "post_year BETWEEN 2015 AND 2020")
    q["q8"] = median("(SELECT age_group, join_year AS post_year, follower_count FROM pin_user)",
                     ["age_group", "post_year"], "age_group IS NOT NULL AND post_year BETWEEN 2015 AND 2020")
    results = {}
    for name, text_ in q.items():
        df = spark.sql(text_)
        results[name] = (df.columns, [tuple(r) for r in df.collect()])
        if name == "q3a":
            df.createOrReplaceTempView("q3a")
            b = spark.sql("SELECT country, follower_count FROM q3a "
                          "ORDER BY follower_count DESC, country ASC LIMIT 1")
            results["q3b"] = (b.columns, [tuple(r) for r in b.collect()])
    return results


def cell(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)
    return str(value)


def write_results(out, results, summary):
    os.makedirs(out, exist_ok=True)
    for name in QUERIES:
        columns, rows = results[name]
        with open(os.path.join(out, f"{name}.csv"), "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(columns)
            for row in rows:
                writer.writerow([cell(v) for v in row])
    with open(os.path.join(out, "summary.json"), "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=2, sort_keys=True)
        f.write("\n")


def main(argv):
    args = parse_args(argv)
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    spark = (
        SparkSession.builder.master(args.master).appName("pinpipe-batch-spark")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", "4g")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.timestampType", "TIMESTAMP_NTZ")
        .config("spark.sql.ansi.enabled", "true")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    job_start = time.monotonic()
    lake = os.path.abspath(args.lake)
    summary = {"records": {}, "rejects": {}, "reject_reasons": {}, "rows": {}}
    for table in ["pin", "geo", "user"]:
        lines = read_lines(spark, lake, f"{args.id}.{table}")
        # One pass over the JSON: only typed, cleaned columns are kept in memory.
        every = clean(spark, parsed(spark, lines, table), table).cache()
        stats = every.groupBy("reason").agg(
            F.count(F.lit(1)).alias("n"),
            F.sum(F.col("follower_count_invalid").cast("int")).alias("invalid")).collect()
        reasons = {r["reason"]: r["n"] for r in stats if r["reason"] is not None}
        if table == "pin":
            summary["follower_count_invalid"] = sum(r["invalid"] or 0 for r in stats if r["reason"] is None)
        cleaned = every.where("reason IS NULL").drop("reason", "follower_count_invalid")
        rows = first_per_ind(spark, cleaned, table).cache()
        rows.createOrReplaceTempView(table)
        if args.tables:
            rows.orderBy("ind").coalesce(1).write.mode("overwrite").parquet(os.path.join(args.out, f"{table}.parquet"))
        summary["rows"][table] = rows.count()
        every.unpersist()
        summary["records"][table] = sum(r["n"] for r in stats)
        summary["rejects"][table] = sum(reasons.values())
        summary["reject_reasons"][table] = reasons
    results = queries(spark)
    job_seconds = time.monotonic() - job_start
    total_seconds = time.monotonic() - START
    summary["job_seconds"] = round(job_seconds, 3)
    summary["total_seconds"] = round(total_seconds, 3)
    write_results(args.out, results, summary)
    spark.stop()
    print(f"spark batch job: {summary['rows']} rows, rejects {summary['rejects']}")
    print(f"spark job wall time {job_seconds:.2f} s (excluding JVM start); "
          f"{total_seconds:.2f} s including JVM start")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
