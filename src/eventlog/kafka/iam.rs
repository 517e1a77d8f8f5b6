//! AWS MSK IAM authentication for the Kafka backend: SASL OAUTHBEARER whose token is a SigV4
//! presigned `kafka-cluster:Connect` URL, as the AWS MSK IAM signer libraries make it.
//!
//! Used by [`super`] when its settings say `sasl.mechanism=AWS_MSK_IAM` (our own value; librdkafka
//! then gets `OAUTHBEARER`). librdkafka asks for a token through the client context's
//! `generate_oauth_token` and refreshes it before it expires; the admin client, whose main queue
//! nobody polls, gets one set directly before each admin call. Credentials come from aws-config's
//! default chain (environment, profile, SSO, web identity, ECS/EC2 roles).
//!
//! The token: `base64url(https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect&
//! X-Amz-Algorithm=…&X-Amz-Credential=…&X-Amz-Date=…&X-Amz-Expires=900&X-Amz-SignedHeaders=host&
//! [X-Amz-Security-Token=…&]X-Amz-Signature=…&User-Agent=pinpipe/<version>)`, unpadded.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_credential_types::Credentials;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider};
use aws_sigv4::http_request::{SignableBody, SignableRequest, SignatureLocation, SigningSettings, sign};
use aws_sigv4::sign::v4;
use base64::Engine;
use rdkafka::client::{Client, ClientContext, OAuthToken};

/// The `sasl.mechanism` value that turns MSK IAM auth on.
pub(super) const MECHANISM: &str = "AWS_MSK_IAM";
/// Our setting naming the region to sign for (else `AWS_REGION`, else the broker host names).
pub(super) const REGION_SETTING: &str = "aws.region";
/// How long a token is valid (the longest MSK accepts is 15 minutes).
const TOKEN_LIFETIME: Duration = Duration::from_secs(900);

/// Makes MSK IAM tokens from the default AWS credentials chain.
#[derive(Clone)]
pub(super) struct TokenSource {
    provider: SharedCredentialsProvider,
    region: String,
    runtime: tokio::runtime::Handle,
}

impl TokenSource {
    /// Loads the default credentials chain and checks that it yields credentials.
    pub(super) async fn load(region: &str) -> Result<Self, String> {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(region.to_string()))
            .load()
            .await;
        let provider =
            config.credentials_provider().ok_or("MSK IAM auth: no AWS credentials provider is configured")?;
        provider.provide_credentials().await.map_err(|e| format!("MSK IAM auth: cannot load AWS credentials: {e}"))?;
        Ok(TokenSource { provider, region: region.to_string(), runtime: tokio::runtime::Handle::current() })
    }

    /// A fresh token, for librdkafka's refresh callback (called on librdkafka's or a blocking
    /// thread: the credentials are fetched on a thread of our own driving the runtime).
    pub(super) fn token(&self) -> Result<OAuthToken, Box<dyn std::error::Error>> {
        let provider = self.provider.clone();
        let runtime = self.runtime.clone();
        let credentials = std::thread::scope(|s| {
            s.spawn(move || runtime.block_on(provider.provide_credentials()))
                .join()
                .map_err(|_| "credentials thread panicked")
        })?
        .map_err(|e| format!("cannot load AWS credentials: {e}"))?;
        Ok(token(&credentials, &self.region, SystemTime::now())?)
    }

    /// Sets a fresh token on `client` directly (for clients whose refresh events nobody polls).
    pub(super) async fn set_on<C: ClientContext>(&self, client: &Client<C>) {
        let credentials = match self.provider.provide_credentials().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "MSK IAM auth: cannot load AWS credentials");
                return;
            }
        };
        match token(&credentials, &self.region, SystemTime::now()) {
            Ok(t) => set_token(client, &t),
            Err(e) => tracing::warn!(error = %e, "MSK IAM auth: cannot sign a token"),
        }
    }
}

/// Hands `token` to librdkafka for `client`.
fn set_token<C: ClientContext>(client: &Client<C>, token: &OAuthToken) {
    let (Ok(value), Ok(principal)) =
        (std::ffi::CString::new(token.token.clone()), std::ffi::CString::new(token.principal_name.clone()))
    else {
        return;
    };
    let mut errstr = [0 as std::ffi::c_char; 512];
    // SAFETY: the client pointer is alive for the borrow; the strings are NUL-terminated and live
    // across the call; no extensions are passed; errstr is a writable buffer of the given size.
    let code = unsafe {
        rdkafka::bindings::rd_kafka_oauthbearer_set_token(
            client.native_ptr(),
            value.as_ptr(),
            token.lifetime_ms,
            principal.as_ptr(),
            std::ptr::null_mut(),
            0,
            errstr.as_mut_ptr(),
            errstr.len(),
        )
    };
    if code != rdkafka::types::RDKafkaRespErr::RD_KAFKA_RESP_ERR_NO_ERROR {
        // SAFETY: librdkafka NUL-terminates errstr.
        let reason = unsafe { std::ffi::CStr::from_ptr(errstr.as_ptr()) }.to_string_lossy().into_owned();
        tracing::warn!(reason, "MSK IAM auth: librdkafka refused the token");
    }
}

/// The MSK IAM token for `credentials` in `region`, signed at `now`.
pub(super) fn token(credentials: &Credentials, region: &str, now: SystemTime) -> Result<OAuthToken, String> {
    let host = format!("kafka.{region}.amazonaws.com");
    let url = format!("https://{host}/?Action=kafka-cluster%3AConnect");
    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(TOKEN_LIFETIME);
    let identity = credentials.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("kafka-cluster")
        .time(now)
        .settings(settings)
        .build()
        .map_err(|e| format!("signing parameters: {e}"))?
        .into();
    let request =
        SignableRequest::new("GET", url.as_str(), [("host", host.as_str())].into_iter(), SignableBody::empty())
            .map_err(|e| format!("signable request: {e}"))?;
    let (instructions, _signature) = sign(request, &params).map_err(|e| format!("signing: {e}"))?.into_parts();
    let (_, query) = instructions.into_parts();
    let mut signed = url::Url::parse(&url).map_err(|e| format!("token URL: {e}"))?;
    {
        let mut pairs = signed.query_pairs_mut();
        for (name, value) in &query {
            pairs.append_pair(name, value);
        }
        pairs.append_pair("User-Agent", concat!("pinpipe/", env!("CARGO_PKG_VERSION")));
    }
    let signed_at = now.duration_since(UNIX_EPOCH).map_err(|_| "the clock is before 1970".to_string())?;
    Ok(OAuthToken {
        token: base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signed.as_str()),
        principal_name: "pinpipe".to_string(),
        lifetime_ms: (signed_at + TOKEN_LIFETIME).as_millis() as i64,
    })
}

/// The region in MSK broker names (`b-1.name.abc123.c2.kafka.us-east-1.amazonaws.com:9098`).
pub(super) fn region_from_brokers(brokers: &str) -> Option<String> {
    let host = brokers.split(',').next()?.rsplit_once(':')?.0;
    let labels: Vec<&str> = host.split('.').collect();
    let i = labels.iter().position(|l| *l == "kafka")?;
    labels.get(i + 1).filter(|_| labels.get(i + 2) == Some(&"amazonaws")).map(|r| r.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_a_presigned_connect_url() {
        let creds =
            Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG", Some("session-token".into()), None, "test");
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let t = token(&creds, "eu-west-1", now).unwrap();
        assert!(!t.token.contains('=') && !t.token.contains('+') && !t.token.contains('/'), "base64url, unpadded");
        let decoded =
            String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&t.token).unwrap()).unwrap();
        let url = url::Url::parse(&decoded).unwrap();
        assert_eq!(url.host_str(), Some("kafka.eu-west-1.amazonaws.com"));
        let q: std::collections::BTreeMap<String, String> = url.query_pairs().into_owned().collect();
        assert_eq!(q["Action"], "kafka-cluster:Connect");
        assert_eq!(q["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(q["X-Amz-Credential"], "AKIDEXAMPLE/20231114/eu-west-1/kafka-cluster/aws4_request");
        assert_eq!(q["X-Amz-Date"], "20231114T221320Z");
        assert_eq!(q["X-Amz-Expires"], "900");
        assert_eq!(q["X-Amz-SignedHeaders"], "host");
        assert_eq!(q["X-Amz-Security-Token"], "session-token");
        assert_eq!(q["X-Amz-Signature"].len(), 64);
        assert!(q["User-Agent"].starts_with("pinpipe/"));
        assert_eq!(t.lifetime_ms, (1_700_000_000 + 900) * 1000);
        // Signing is deterministic: the same inputs give the same token.
        assert_eq!(token(&creds, "eu-west-1", now).unwrap().token, t.token);
    }

    #[test]
    fn regions_come_from_msk_broker_names() {
        assert_eq!(
            region_from_brokers("b-1.demo.abc123.c2.kafka.us-east-1.amazonaws.com:9098,b-2.x:9098").as_deref(),
            Some("us-east-1")
        );
        assert_eq!(region_from_brokers("localhost:9092"), None);
    }
}
