//! Request bodies: the content type, parsing the client's JSON as the documented object, and
//! turning each record's JSON text into the compact one-line form the log stores.
//!
//! Owns [`read_body`] (content type, then the whole body, which [`super::layers`] has already
//! limited in size and time), [`parse_object`] (UTF-8, then JSON of the request's shape, objects
//! only: serde's tuple form of a struct is refused) and [`compact_json`]. The route modules
//! ([`super::kafka_rest`], [`super::kinesis`]) call them in that order; the log receives what
//! [`compact_json`] produces, which the sink later writes as one NDJSON line per record.

use std::fmt;
use std::marker::PhantomData;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use serde::de::value::MapAccessDeserializer;
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};

use super::error::Error;
pub use super::layers::MAX_BODY_BYTES;

/// The deepest nesting of arrays and objects a record value or key may have. The jobs' JSON
/// parser stops at 128 levels for a whole record; a value the gateway stores must be one they can
/// read.
pub(crate) const MAX_DEPTH: usize = 100;

/// The media type of `Content-Type` without parameters, if there is one.
fn media_type(headers: &HeaderMap) -> Option<&[u8]> {
    let v = headers.get(header::CONTENT_TYPE)?.as_bytes();
    let essence = v.split(|&b| b == b';').next().unwrap_or(v);
    Some(essence.trim_ascii())
}

/// Checks the content type, then reads the body (already limited in size and time by the API
/// layer).
///
/// `accepted` lists media types compared case-insensitively, parameters ignored. When
/// `allow_untyped_empty` is set, a request without `Content-Type` passes this check and is
/// refused only if its body turns out not to be empty (Kinesis `CreateStream` with no body).
pub(crate) async fn read_body(
    headers: &HeaderMap,
    body: Body,
    accepted: &[&str],
    allow_untyped_empty: bool,
) -> Result<Bytes, Error> {
    let untyped = match media_type(headers) {
        Some(mt) if accepted.iter().any(|a| mt.eq_ignore_ascii_case(a.as_bytes())) => false,
        None if allow_untyped_empty => true,
        other => {
            let content_type = other.map(|b| String::from_utf8_lossy(b).into_owned());
            return Err(Error::UnsupportedMediaType { content_type });
        }
    };
    let bytes = super::layers::collect(body).await?;
    if untyped && !bytes.trim_ascii().is_empty() {
        return Err(Error::UnsupportedMediaType { content_type: None });
    }
    Ok(bytes)
}

/// Parses a request body as `T`, which must be a JSON object (so must every struct inside it
/// that is read through [`Object`]): the text must be UTF-8 throughout, ignored fields included.
pub(crate) fn parse_object<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Error> {
    let text = std::str::from_utf8(bytes).map_err(|_| Error::NotUtf8)?;
    serde_json::from_str::<Object<T>>(text).map(|o| o.0).map_err(|e| classify_json_error(e, bytes))
}

/// A struct read only from a JSON object. serde's derived structs also accept an array of their
/// fields in order (`[[{"value":1}]]` for `{"records":[{"value":1}]}`), which no client of these
/// APIs means; wrapping a field's type in `Object` refuses that form.
#[derive(Debug)]
pub(crate) struct Object<T>(pub T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Object<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OnlyMaps<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for OnlyMaps<T> {
            type Value = T;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<T, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map))
            }
        }
        deserializer.deserialize_map(OnlyMaps(PhantomData)).map(Object)
    }
}

/// Turns a `serde_json` failure into the right error: text that is not JSON at all is
/// [`Error::MalformedJson`], well-formed JSON of the wrong shape is [`Error::InvalidRequest`].
///
/// A typed parse stops at the first shape error, before it has seen the whole text, so on a
/// shape error the text is checked once more as plain JSON.
pub(crate) fn classify_json_error(e: serde_json::Error, body: &[u8]) -> Error {
    use serde_json::error::Category;
    match e.classify() {
        Category::Data => match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
            Ok(_) => Error::InvalidRequest(e.to_string()),
            Err(syntax) => Error::MalformedJson(syntax),
        },
        Category::Syntax | Category::Eof | Category::Io => Error::MalformedJson(e),
    }
}

/// The JSON text `raw` with the whitespace between tokens removed and everything else — key
/// order, number spelling, string escapes, non-ASCII text — kept byte for byte.
///
/// `raw` must be valid JSON (it comes from a `RawValue`); whitespace inside strings is data and
/// stays. Raw control characters cannot occur inside valid JSON strings, so the four JSON
/// whitespace bytes outside strings are exactly what goes.
pub fn compact_json(raw: &str) -> Vec<u8> {
    compact_json_with_depth(raw).0
}

/// [`compact_json`], and how deep the text nests arrays and objects (0 for a scalar), measured
/// on the same pass.
pub(crate) fn compact_json_with_depth(raw: &str) -> (Vec<u8>, usize) {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut run = 0; // start of the bytes not yet copied
    let (mut depth, mut deepest) = (0usize, 0usize);
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
                i += 1;
            }
            b']' | b'}' => {
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'"' => {
                i += 1;
                while i < b.len() {
                    match b[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
            }
            b' ' | b'\t' | b'\n' | b'\r' => {
                out.extend_from_slice(&b[run..i]);
                i += 1;
                run = i;
            }
            _ => i += 1,
        }
    }
    out.extend_from_slice(&b[run..]);
    (out, deepest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compact(s: &str) -> String {
        String::from_utf8(compact_json(s)).unwrap()
    }

    #[test]
    fn removes_whitespace_between_tokens() {
        assert_eq!(compact(r#"{"index": 7528, "tags": ["a", "b"]}"#), r#"{"index":7528,"tags":["a","b"]}"#);
        let pretty = "{\n  \"a\" : [\r\n\t1 ,\n  2.50e3\n ],\n  \"b\": null\n}";
        assert_eq!(compact(pretty), r#"{"a":[1,2.50e3],"b":null}"#);
        assert_eq!(compact("  17  "), "17");
        assert_eq!(compact("{}"), "{}");
    }

    #[test]
    fn keeps_strings_byte_for_byte() {
        let s = r#"{"t": "a  b", "q": "say \"hi\" , ok", "n": "line\nbreak\\", "z": "x"}"#;
        assert_eq!(compact(s), r#"{"t":"a  b","q":"say \"hi\" , ok","n":"line\nbreak\\","z":"x"}"#);
        let u = "{ \"d\": \"Lo\u{e9}s caf\u{e9} \u{2026}\u{a0}\", \"e\": \"\\u00e9 \\ud83d\\ude00\" }";
        assert_eq!(compact(u), "{\"d\":\"Lo\u{e9}s caf\u{e9} \u{2026}\u{a0}\",\"e\":\"\\u00e9 \\ud83d\\ude00\"}");
        assert_eq!(compact(r#"[ "\\", "\\\"" , 1 ]"#), r#"["\\","\\\"",1]"#);
    }

    #[test]
    fn compacted_text_is_the_same_json() {
        let s = "{\"index\": 7528, \"unique_id\": \"fbe53c66-3442-4773-b19e-d3ec6f54dddf\", \"title\": \"No Title Data Available\", \"follower_count\": \"3k\", \"nested\": {\"x\": [1, 2, {\"y\": -0.5}]}}";
        let c = compact_json(s);
        let a: serde_json::Value = serde_json::from_str(s).unwrap();
        let b: serde_json::Value = serde_json::from_slice(&c).unwrap();
        assert_eq!(a, b);
        assert!(!c.contains(&b'\n'));
    }

    #[test]
    fn json_errors_split_into_syntax_and_shape() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct R {
            records: Vec<u32>,
        }
        for (body, malformed) in [
            (&b"{not json"[..], true),
            (b"", true),
            (b"{\"records\": 5, oops", true),
            (b"{\"records\": 5}", false),
            (b"[]", false),
        ] {
            let e = serde_json::from_slice::<R>(body).unwrap_err();
            let c = classify_json_error(e, body);
            assert_eq!(matches!(c, Error::MalformedJson(_)), malformed, "{:?}", String::from_utf8_lossy(body));
        }
    }

    #[test]
    fn depth_counts_nested_arrays_and_objects_outside_strings() {
        assert_eq!(compact_json_with_depth("17").1, 0);
        assert_eq!(compact_json_with_depth(r#"{"a": [1, {"b": "[[[{"}]}"#).1, 3);
        let deep = format!("{}{}", "[".repeat(150), "]".repeat(150));
        assert_eq!(compact_json_with_depth(&deep), (deep.clone().into_bytes(), 150));
    }

    #[test]
    fn request_bodies_must_be_utf8_objects_all_the_way_down() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Inner {
            value: u32,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Outer {
            records: Vec<Object<Inner>>,
        }
        assert_eq!(parse_object::<Outer>(br#"{"records":[{"value":1}]}"#).unwrap().records[0].0.value, 1);
        for tuple in [&br#"[[{"value":1}]]"#[..], br#"{"records":[[1]]}"#, br#"[[[1]]]"#] {
            let e = parse_object::<Outer>(tuple).unwrap_err();
            assert!(matches!(e, Error::InvalidRequest(_)), "{:?}: {e:?}", String::from_utf8_lossy(tuple));
        }
        let e = parse_object::<Outer>(b"{\"records\":[{\"value\":1}],\"x\":\"\xff\"}").unwrap_err();
        assert!(matches!(e, Error::NotUtf8), "{e:?}");
    }
}
