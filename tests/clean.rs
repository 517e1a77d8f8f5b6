//! The shared cleaning code (SPEC §6) through its public API: `decode` (JSON → typed batch +
//! rejects) and `clean` (typed batch → cleaned batch), compared as whole tables.

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::assert_batches_eq;
use pinpipe::clean::{self, Table};

/// Decodes `lines` of `table`, asserts none is rejected, and cleans them.
fn cleaned(table: Table, lines: &[&str]) -> RecordBatch {
    let records: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let decoded = clean::decode(table, &records).unwrap();
    assert_eq!(decoded.rejects, vec![], "no record of this test is unreadable");
    assert_eq!(decoded.rows, (0..lines.len()).collect::<Vec<_>>());
    let batch = clean::clean(table, &decoded.batch).unwrap();
    assert_eq!(batch.schema(), clean::cleaned_schema(table));
    batch
}

/// (position, reason) of every reject of `lines`.
fn rejects(table: Table, lines: &[&str]) -> Vec<(usize, String)> {
    let records: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
    let decoded = clean::decode(table, &records).unwrap();
    for r in &decoded.rejects {
        assert_eq!(r.raw, lines[r.index], "a reject keeps its record as received");
    }
    decoded.rejects.into_iter().map(|r| (r.index, r.reason)).collect()
}

fn pin(index: i64, title: &str, description: &str, poster: &str, followers: &str, tags: &str, src: &str) -> String {
    serde_json::json!({
        "index": index, "unique_id": format!("u{index}"), "title": title, "description": description,
        "poster_name": poster, "follower_count": followers, "tag_list": tags,
        "is_image_or_video": "image", "image_src": src, "downloaded": 1,
        "save_location": "Local save in /data/art", "category": "art",
    })
    .to_string()
}

#[test]
fn cleaned_schemas_are_exactly_spec_section_6() {
    let describe = |table: Table| -> Vec<(String, DataType)> {
        clean::cleaned_schema(table).fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect()
    };
    let expect = |columns: &[(&str, DataType)]| -> Vec<(String, DataType)> {
        columns.iter().map(|(n, t)| (n.to_string(), t.clone())).collect()
    };
    let timestamp = DataType::Timestamp(TimeUnit::Microsecond, None);
    let list = DataType::List(Arc::new(Field::new("element", DataType::Float64, true)));
    use DataType::{Int32, Int64, Utf8};
    assert_eq!(
        describe(Table::Pin),
        expect(&[
            ("ind", Int64),
            ("unique_id", Utf8),
            ("title", Utf8),
            ("description", Utf8),
            ("follower_count", Int64),
            ("poster_name", Utf8),
            ("tag_list", Utf8),
            ("is_image_or_video", Utf8),
            ("image_src", Utf8),
            ("save_location", Utf8),
            ("category", Utf8),
        ])
    );
    assert_eq!(
        describe(Table::Geo),
        expect(&[("ind", Int64), ("country", Utf8), ("coordinates", list), ("timestamp", timestamp.clone())])
    );
    assert_eq!(
        describe(Table::User),
        expect(&[("ind", Int64), ("user_name", Utf8), ("age", Int32), ("date_joined", timestamp)])
    );
}

#[test]
fn every_placeholder_becomes_null_in_its_own_column_only() {
    let tags = "N,o, ,T,a,g,s, ,A,v,a,i,l,a,b,l,e";
    let lines = [
        pin(
            1,
            "No Title Data Available",
            "No description available Story format",
            "User Info Error",
            "User Info Error",
            tags,
            "Image src error.",
        ),
        pin(2, "", "No description available", "", "", "", ""),
        pin(3, "Untitled", "Untitled", "Image src error.", "12k", "a,b", "No Title Data Available"),
        // Not exact: kept as they are, spaces included.
        pin(4, "No Title Data Available ", " Untitled", "User Info Error ", "1k", "N,o,T,a,g,s", "Image src error"),
    ];
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let batch = cleaned(Table::Pin, &lines);
    assert_batches_eq!(
        [
            "+-----+-----------+--------------------------+-------------+----------------+------------------+-------------+-------------------+-------------------------+---------------+----------+",
            "| ind | unique_id | title                    | description | follower_count | poster_name      | tag_list    | is_image_or_video | image_src               | save_location | category |",
            "+-----+-----------+--------------------------+-------------+----------------+------------------+-------------+-------------------+-------------------------+---------------+----------+",
            "| 1   | u1        |                          |             |                |                  |             | image             |                         | /data/art     | art      |",
            "| 2   | u2        |                          |             |                |                  |             | image             |                         | /data/art     | art      |",
            "| 3   | u3        | Untitled                 |             | 12000          | Image src error. | a,b         | image             | No Title Data Available | /data/art     | art      |",
            "| 4   | u4        | No Title Data Available  |  Untitled   | 1000           | User Info Error  | N,o,T,a,g,s | image             | Image src error         | /data/art     | art      |",
            "+-----+-----------+--------------------------+-------------+----------------+------------------+-------------+-------------------+-------------------------+---------------+----------+",
        ],
        &[batch]
    );
}

#[test]
fn follower_counts_in_every_form() {
    let forms: [serde_json::Value; 14] = [
        "0".into(),
        "437".into(),
        "12k".into(),
        "1.5k".into(),
        "3M".into(),
        "User Info Error".into(),
        "garbage".into(),
        "1.5".into(),
        "2.5k".into(),
        "-".into(),
        "12K".into(),
        " 7 ".into(),
        serde_json::Value::Null,
        "0.0000025M".into(),
    ];
    let lines: Vec<String> = forms
        .iter()
        .enumerate()
        .map(|(i, f)| serde_json::json!({"index": i, "follower_count": f}).to_string())
        .collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let batch = cleaned(Table::Pin, &lines);
    let batch = batch.project(&[0, 4]).unwrap();
    assert_batches_eq!(
        [
            "+-----+----------------+",
            "| ind | follower_count |",
            "+-----+----------------+",
            "| 0   | 0              |",
            "| 1   | 437            |",
            "| 2   | 12000          |",
            "| 3   | 1500           |",
            "| 4   | 3000000        |",
            "| 5   |                |",
            "| 6   |                |",
            "| 7   | 2              |",
            "| 8   | 2500           |",
            "| 9   |                |",
            "| 10  |                |",
            "| 11  | 7              |",
            "| 12  |                |",
            "| 13  | 3              |",
            "+-----+----------------+",
        ],
        &[batch]
    );
}

#[test]
fn save_location_loses_its_prefix_and_other_columns_keep_their_text() {
    let lines = [
        r#"{"index": 1, "save_location": "Local save in /data/finance", "poster_name": "Ann ", "description": "Nice\u2026\u00a0"}"#,
        r#"{"index": 2, "save_location": "/data/x Local save in ", "is_image_or_video": "multi-video(story page format)"}"#,
        r#"{"index": 3, "save_location": "Local save in ", "unique_id": "", "category": ""}"#,
        r#"{"index": 4, "extra": [1, {"a": 2}], "downloaded": null}"#,
    ];
    let batch = cleaned(Table::Pin, &lines);
    assert_batches_eq!(
        [
            "+-----+-----------+-------+-------------+----------------+-------------+----------+--------------------------------+-----------+------------------------+----------+",
            "| ind | unique_id | title | description | follower_count | poster_name | tag_list | is_image_or_video              | image_src | save_location          | category |",
            "+-----+-----------+-------+-------------+----------------+-------------+----------+--------------------------------+-----------+------------------------+----------+",
            "| 1   |           |       | Nice…\u{a0}      |                | Ann         |          |                                |           | /data/finance          |          |",
            "| 2   |           |       |             |                |             |          | multi-video(story page format) |           | /data/x Local save in  |          |",
            "| 3   |           |       |             |                |             |          |                                |           |                        |          |",
            "| 4   |           |       |             |                |             |          |                                |           |                        |          |",
            "+-----+-----------+-------+-------------+----------------+-------------+----------+--------------------------------+-----------+------------------------+----------+",
        ],
        std::slice::from_ref(&batch)
    );
    // The trailing space of the poster name and the no-break space survive, byte for byte.
    let names = batch.column(5).as_any().downcast_ref::<datafusion::arrow::array::StringArray>().unwrap();
    assert_eq!(names.value(0), "Ann ");
    let descriptions = batch.column(3).as_any().downcast_ref::<datafusion::arrow::array::StringArray>().unwrap();
    assert_eq!(descriptions.value(0), "Nice\u{2026}\u{a0}");
}

#[test]
fn geo_takes_both_datetime_forms_and_builds_coordinates() {
    let lines = [
        r#"{"ind": 1, "timestamp": "2019-01-02 03:04:05", "latitude": -45.8508, "longitude": 66, "country": "Cote d'Ivoire"}"#,
        r#"{"ind": 2, "timestamp": "2020-02-29T23:59:59", "latitude": null, "longitude": 1.5, "country": ""}"#,
        r#"{"ind": 3, "timestamp": "2022-10-01 00:00:00.25", "country": "Antarctica (the territory South of 60 deg S)"}"#,
    ];
    let batch = cleaned(Table::Geo, &lines);
    assert_batches_eq!(
        [
            "+-----+----------------------------------------------+------------------+-------------------------+",
            "| ind | country                                      | coordinates      | timestamp               |",
            "+-----+----------------------------------------------+------------------+-------------------------+",
            "| 1   | Cote d'Ivoire                                | [-45.8508, 66.0] | 2019-01-02T03:04:05     |",
            "| 2   |                                              | [, 1.5]          | 2020-02-29T23:59:59     |",
            "| 3   | Antarctica (the territory South of 60 deg S) | [, ]             | 2022-10-01T00:00:00.250 |",
            "+-----+----------------------------------------------+------------------+-------------------------+",
        ],
        &[batch]
    );
}

#[test]
fn user_name_joins_first_and_last_and_is_null_when_either_is() {
    let lines = [
        r#"{"ind": 1, "first_name": "Ann", "last_name": "Lee", "age": 24, "date_joined": "2015-10-01 00:00:00"}"#,
        r#"{"ind": 2, "first_name": "Bo", "last_name": null, "age": 51, "date_joined": "2016-01-01T12:00:00"}"#,
        r#"{"ind": 3, "first_name": "", "last_name": "Lee", "date_joined": "2017-12-31 23:59:59"}"#,
        r#"{"ind": 4, "last_name": "Lee", "first_name": "Cy ", "age": null, "date_joined": "2017-12-31 23:59:59"}"#,
    ];
    let batch = cleaned(Table::User, &lines);
    assert_batches_eq!(
        [
            "+-----+-----------+-----+---------------------+",
            "| ind | user_name | age | date_joined         |",
            "+-----+-----------+-----+---------------------+",
            "| 1   | Ann Lee   | 24  | 2015-10-01T00:00:00 |",
            "| 2   |           | 51  | 2016-01-01T12:00:00 |",
            "| 3   |           |     | 2017-12-31T23:59:59 |",
            "| 4   | Cy  Lee   |     | 2017-12-31T23:59:59 |",
            "+-----+-----------+-----+---------------------+",
        ],
        &[batch]
    );
}

#[test]
fn every_unreadable_record_is_rejected_with_its_reason() {
    let pin_lines = [
        r#"{"index": 1, "title": "ok"}"#,
        r#"not json"#,
        r#"{"index": 2"#,
        r#"{"index": 3} trailing"#,
        r#"[1, 2]"#,
        r#""a string""#,
        r#"{"title": "no index"}"#,
        r#"{"index": null}"#,
        r#"{"index": "4"}"#,
        r#"{"index": 4.5}"#,
        r#"{"index": 18446744073709551615}"#,
        r#"{"index": 5, "title": 7}"#,
        r#"{"index": 6, "downloaded": "1"}"#,
        r#"{"index": 7, "follower_count": true}"#,
        r#"{"index": 8, "tag_list": ["a"]}"#,
        r#"{"index": 10, "follower_count": 437}"#,
        "",
        r#"{"index": 9, "title": "ok too"}"#,
    ];
    assert_eq!(
        rejects(Table::Pin, &pin_lines),
        [
            (1, "not JSON"),
            (2, "not JSON"),
            (3, "not JSON"),
            (4, "not a JSON object"),
            (5, "not a JSON object"),
            (6, "missing `index`"),
            (7, "missing `index`"),
            (8, "invalid `index`"),
            (9, "invalid `index`"),
            (10, "invalid `index`"),
            (11, "wrong type for `title`"),
            (12, "wrong type for `downloaded`"),
            (13, "wrong type for `follower_count`"),
            (14, "wrong type for `tag_list`"),
            (15, "wrong type for `follower_count`"),
            (16, "not JSON"),
        ]
        .map(|(i, r)| (i, r.to_string()))
    );
    let geo_lines = [
        r#"{"ind": 1, "timestamp": "2020-01-01 00:00:00"}"#,
        r#"{"timestamp": "2020-01-01 00:00:00"}"#,
        r#"{"ind": 2}"#,
        r#"{"ind": 3, "timestamp": null}"#,
        r#"{"ind": 4, "timestamp": ""}"#,
        r#"{"ind": 5, "timestamp": "2020-13-01 00:00:00"}"#,
        r#"{"ind": 6, "timestamp": "01/02/2020"}"#,
        r#"{"ind": 7, "timestamp": 1577836800}"#,
        r#"{"ind": 8, "timestamp": "2020-01-01 00:00:00", "latitude": "1.5"}"#,
        r#"{"ind": 9, "timestamp": "2020-01-01 00:00:00", "country": 1}"#,
    ];
    assert_eq!(
        rejects(Table::Geo, &geo_lines),
        [
            (1, "missing `ind`"),
            (2, "missing `timestamp`"),
            (3, "missing `timestamp`"),
            (4, "missing `timestamp`"),
            (5, "unparseable `timestamp`"),
            (6, "unparseable `timestamp`"),
            (7, "wrong type for `timestamp`"),
            (8, "wrong type for `latitude`"),
            (9, "wrong type for `country`"),
        ]
        .map(|(i, r)| (i, r.to_string()))
    );
    let user_lines = [
        r#"{"ind": 1, "date_joined": "2016-01-01 00:00:00", "age": "30"}"#,
        r#"{"ind": 2, "date_joined": "2016-01-01 00:00:00", "age": 30.5}"#,
        r#"{"ind": 3, "date_joined": "2016-01-01 00:00:00", "age": 3000000000}"#,
        r#"{"ind": 4, "date_joined": "2016-01-01"}"#,
        r#"{"ind": 5, "date_joined": "2016-01-01 00:00:00", "first_name": false}"#,
        r#"{"ind": "x", "date_joined": "bad"}"#,
        r#"{"ind": 6, "date_joined": "2016-01-01 00:00:00", "age": 30}"#,
    ];
    assert_eq!(
        rejects(Table::User, &user_lines),
        [
            (0, "wrong type for `age`"),
            (1, "wrong type for `age`"),
            (2, "invalid `age`"),
            (3, "unparseable `date_joined`"),
            (4, "wrong type for `first_name`"),
            (5, "invalid `ind`"),
        ]
        .map(|(i, r)| (i, r.to_string()))
    );
}

#[test]
fn readable_records_keep_their_positions_around_rejects() {
    let lines: [&[u8]; 5] = [
        br#"{"ind": 10, "date_joined": "2016-01-01 00:00:00"}"#,
        b"\xff\xfe",
        br#"{"ind": 11, "date_joined": "2016-01-01 00:00:00", "ind": 12}"#,
        br#"{"ind": 13, "date_joined": "2016-01-01 00:00:00", "first_name": "A\"B", "last_name": "\u00e9"}"#,
        br#"{"ind": 14}"#,
    ];
    let decoded = clean::decode(Table::User, &lines).unwrap();
    assert_eq!(decoded.rows, [0, 3]);
    let rejects: Vec<(usize, &str)> = decoded.rejects.iter().map(|r| (r.index, r.reason.as_str())).collect();
    // A known field given twice is rejected, whatever its values (SPEC §6).
    assert_eq!(rejects, [(1, "not JSON"), (2, "duplicate field `ind`"), (4, "missing `date_joined`")]);
    assert_eq!(decoded.rejects[0].raw, "\u{fffd}\u{fffd}");
    let batch = clean::clean(Table::User, &decoded.batch).unwrap();
    // Escapes are decoded.
    assert_batches_eq!(
        [
            "+-----+-----------+-----+---------------------+",
            "| ind | user_name | age | date_joined         |",
            "+-----+-----------+-----+---------------------+",
            "| 10  |           |     | 2016-01-01T00:00:00 |",
            "| 13  | A\"B é     |     | 2016-01-01T00:00:00 |",
            "+-----+-----------+-----+---------------------+",
        ],
        &[batch]
    );
}

#[test]
fn a_known_field_given_twice_is_rejected_and_unknown_ones_are_not() {
    let lines: [&[u8]; 4] = [
        br#"{"index": 1, "index": 2}"#,
        br#"{"index": 1, "title": "a", "title": null}"#,
        br#"{"index": 3, "extra": 1, "extra": 2, "category": "diy-and-crafts"}"#,
        br#"{"index": 4, "category": "x", "category": "x"}"#,
    ];
    let decoded = clean::decode(Table::Pin, &lines).unwrap();
    assert_eq!(decoded.rows, [2]);
    let rejects: Vec<(usize, &str)> = decoded.rejects.iter().map(|r| (r.index, r.reason.as_str())).collect();
    assert_eq!(
        rejects,
        [(0, "duplicate field `index`"), (1, "duplicate field `title`"), (3, "duplicate field `category`")]
    );
}

#[test]
fn a_record_that_is_not_utf8_anywhere_is_not_json_and_fields_in_any_order_are_read() {
    let lines: [&[u8]; 3] = [
        b"{\"ind\": 1, \"date_joined\": \"2016-01-01 00:00:00\", \"note\": \"\xff\"}",
        br#"{"age": 30, "last_name": "B", "date_joined": "2016-01-01 00:00:00", "first_name": "A", "ind": 2}"#,
        br#"{"ind": 3, "first_name": "C", "last_name": "D", "age": 40, "date_joined": "2017-01-01T00:00:00"}"#,
    ];
    let decoded = clean::decode(Table::User, &lines).unwrap();
    assert_eq!(decoded.rows, [1, 2]);
    assert_eq!(decoded.rejects.iter().map(|r| (r.index, r.reason.as_str())).collect::<Vec<_>>(), [(0, "not JSON")]);
    let batch = clean::clean(Table::User, &decoded.batch).unwrap();
    assert_batches_eq!(
        [
            "+-----+-----------+-----+---------------------+",
            "| ind | user_name | age | date_joined         |",
            "+-----+-----------+-----+---------------------+",
            "| 2   | A B       | 30  | 2016-01-01T00:00:00 |",
            "| 3   | C D       | 40  | 2017-01-01T00:00:00 |",
            "+-----+-----------+-----+---------------------+",
        ],
        &[batch]
    );
}

#[test]
fn an_empty_slice_decodes_to_an_empty_batch_of_the_raw_schema() {
    for table in Table::ALL {
        let decoded = clean::decode(table, &[]).unwrap();
        assert_eq!(decoded.batch.schema(), clean::raw_schema(table));
        assert_eq!(decoded.batch.num_rows(), 0);
        let batch = clean::clean(table, &decoded.batch).unwrap();
        assert_eq!((batch.schema(), batch.num_rows()), (clean::cleaned_schema(table), 0));
    }
}
