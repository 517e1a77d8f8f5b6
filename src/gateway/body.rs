//! Request bodies: the size limit, the content type, the API key, and turning the client's JSON
//! text into the compact one-line form the log stores.
//!
//! Owns the checks every write route runs in the same order (key → `Content-Length` → content
//! type → bounded read) and [`compact_json`]. The route modules ([`super::kafka_rest`],
//! [`super::kinesis`]) parse the bytes this returns; the log receives what [`compact_json`]
//! produces, which the sink later writes as one NDJSON line per record.

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, header};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use super::error::Error;

/// The largest request body accepted, as API Gateway's 10 MB payload limit.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// Checks `x-api-key` against the configured keys; no keys configured means the API is open.
pub fn check_api_key(headers: &HeaderMap, keys: &[String]) -> Result<(), Error> {
    if keys.is_empty() {
        return Ok(());
    }
    let given = headers.get("x-api-key").map(|v| v.as_bytes()).ok_or(Error::Forbidden)?;
    // Look at every key, and every byte of equal-length keys, so timing says little.
    let found = keys.iter().fold(false, |found, k| found | same_bytes(given, k.as_bytes()));
    if found { Ok(()) } else { Err(Error::Forbidden) }
}

fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The media type of `Content-Type` without parameters, if there is one.
fn media_type(headers: &HeaderMap) -> Option<&[u8]> {
    let v = headers.get(header::CONTENT_TYPE)?.as_bytes();
    let essence = v.split(|&b| b == b';').next().unwrap_or(v);
    Some(essence.trim_ascii())
}

/// Checks the declared size, then the content type, then reads the body, stopping at
/// [`MAX_BODY_BYTES`] even when no `Content-Length` was sent (chunked uploads).
///
/// `accepted` lists media types compared case-insensitively, parameters ignored. When
/// `allow_untyped_empty` is set, a request without `Content-Type` passes this check and is
/// refused only if its body turns out not to be empty (Kinesis `CreateStream` with no body).
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    accepted: &[&str],
    allow_untyped_empty: bool,
) -> Result<Bytes, Error> {
    if let Some(len) = headers.get(header::CONTENT_LENGTH) {
        let too_big = std::str::from_utf8(len.as_bytes())
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .is_some_and(|n| n > MAX_BODY_BYTES as u64);
        if too_big {
            return Err(Error::BodyTooLarge { limit: MAX_BODY_BYTES });
        }
    }
    let untyped = match media_type(headers) {
        Some(mt) if accepted.iter().any(|a| mt.eq_ignore_ascii_case(a.as_bytes())) => false,
        None if allow_untyped_empty => true,
        other => {
            let content_type = other.map(|b| String::from_utf8_lossy(b).into_owned());
            return Err(Error::UnsupportedMediaType { content_type });
        }
    };
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) if e.is::<LengthLimitError>() => {
            return Err(Error::BodyTooLarge { limit: MAX_BODY_BYTES });
        }
        Err(e) => return Err(Error::BodyRead(e.to_string())),
    };
    if untyped && !bytes.trim_ascii().is_empty() {
        return Err(Error::UnsupportedMediaType { content_type: None });
    }
    Ok(bytes)
}

/// Turns a `serde_json` failure into the right error: text that is not JSON at all is
/// [`Error::MalformedJson`], well-formed JSON of the wrong shape is [`Error::InvalidRequest`].
///
/// A typed parse stops at the first shape error, before it has seen the whole text, so on a
/// shape error the text is checked once more as plain JSON.
pub fn classify_json_error(e: serde_json::Error, body: &[u8]) -> Error {
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
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut run = 0; // start of the bytes not yet copied
    let mut i = 0;
    while i < b.len() {
        match b[i] {
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
    out
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
    fn api_keys_are_checked_only_when_configured() {
        let mut h = HeaderMap::new();
        assert!(check_api_key(&h, &[]).is_ok());
        let keys = vec!["k1".to_owned(), "secret".to_owned()];
        assert!(matches!(check_api_key(&h, &keys), Err(Error::Forbidden)));
        h.insert("x-api-key", "secreT".parse().unwrap());
        assert!(matches!(check_api_key(&h, &keys), Err(Error::Forbidden)));
        h.insert("x-api-key", "secret".parse().unwrap());
        assert!(check_api_key(&h, &keys).is_ok());
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

    #[tokio::test]
    async fn bodies_are_limited_with_or_without_content_length() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "Application/JSON; charset=utf-8".parse().unwrap());
        let ok = read_body(&h, Body::from("{}"), &["application/json"], false).await.unwrap();
        assert_eq!(&ok[..], b"{}");

        let big = vec![b' '; MAX_BODY_BYTES + 1];
        let e = read_body(&h, Body::from(big), &["application/json"], false).await.unwrap_err();
        assert!(matches!(e, Error::BodyTooLarge { .. }), "{e:?}");

        h.insert(header::CONTENT_LENGTH, (MAX_BODY_BYTES + 1).to_string().parse().unwrap());
        let e = read_body(&h, Body::empty(), &["application/json"], false).await.unwrap_err();
        assert!(matches!(e, Error::BodyTooLarge { .. }), "{e:?}");

        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        let e = read_body(&h, Body::from("{}"), &["application/json"], true).await.unwrap_err();
        assert!(matches!(e, Error::UnsupportedMediaType { .. }), "{e:?}");
        let h = HeaderMap::new();
        assert!(read_body(&h, Body::empty(), &["application/json"], true).await.is_ok());
        let e = read_body(&h, Body::from("{}"), &["application/json"], true).await.unwrap_err();
        assert!(matches!(e, Error::UnsupportedMediaType { .. }), "{e:?}");
    }
}
