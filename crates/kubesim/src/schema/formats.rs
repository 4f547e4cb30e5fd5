//! The `format` values the API server validates for custom resources.
//!
//! The list is `supportedVersionedFormats` in
//! `k8s.io/apiextensions-apiserver/pkg/apiserver/validation/formats.go`
//! (v1.35); other formats are stripped from the schema upstream and so are
//! not validated here either. Names are normalised as go-openapi `strfmt`
//! does (dashes removed: `date-time` is `datetime`). Simplification: the
//! checks follow `strfmt`'s regular expressions and Go parsers closely but
//! `isbn*` and `creditcard` are checked by shape only (no checksum), and
//! `email`/`uri` by their main shape rather than Go's full parsers.

use std::net::IpAddr;
use std::sync::LazyLock;

use base64::Engine;
use regex::Regex;

fn normalize(format: &str) -> String {
    format.replace('-', "").to_ascii_lowercase()
}

const KNOWN: &[&str] = &[
    "bsonobjectid",
    "uri",
    "email",
    "hostname",
    "ipv4",
    "ipv6",
    "cidr",
    "mac",
    "uuid",
    "uuid3",
    "uuid4",
    "uuid5",
    "isbn",
    "isbn10",
    "isbn13",
    "creditcard",
    "ssn",
    "hexcolor",
    "rgbcolor",
    "byte",
    "password",
    "date",
    "duration",
    "datetime",
    "k8sshortname",
    "k8slongname",
];

/// Whether the API server validates `format` (other formats are ignored).
pub fn is_known(format: &str) -> bool {
    KNOWN.contains(&normalize(format).as_str())
}

macro_rules! re {
    ($name:ident, $src:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| {
            // The pattern is a literal checked by the tests below.
            #[allow(clippy::expect_used)]
            Regex::new($src).expect("static regex compiles")
        });
    };
}

re!(
    UUID,
    r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$"
);
re!(
    UUID3,
    r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?3[0-9a-f]{3}-?[0-9a-f]{4}-?[0-9a-f]{12}$"
);
re!(
    UUID4,
    r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?4[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"
);
re!(
    UUID5,
    r"(?i)^[0-9a-f]{8}-?[0-9a-f]{4}-?5[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$"
);
re!(
    HOSTNAME,
    r"^([a-zA-Z0-9\p{S}\p{L}]((-?[a-zA-Z0-9\p{S}\p{L}]{0,62})?)|([a-zA-Z0-9\p{S}\p{L}](([a-zA-Z0-9-\p{S}\p{L}]{0,61}[a-zA-Z0-9\p{S}\p{L}])?)(\.)){1,}([a-zA-Z\p{L}]){2,63})$"
);
re!(
    MAC,
    r"^([0-9A-Fa-f]{2}[:-]){5}([0-9A-Fa-f]{2})$|^([0-9A-Fa-f]{2}[:-]){7}([0-9A-Fa-f]{2})$|^([0-9A-Fa-f]{4}\.){2}([0-9A-Fa-f]{4})$"
);
re!(HEXCOLOR, r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$");
re!(
    RGBCOLOR,
    r"^rgb\(\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*,\s*(0|[1-9]\d?|1\d\d?|2[0-4]\d|25[0-5])\s*\)$"
);
re!(SSN, r"^\d{3}[- ]?\d{2}[- ]?\d{4}$");
re!(BSON, r"^[0-9a-fA-F]{24}$");
re!(ISBN10, r"^(?:[0-9]{9}X|[0-9]{10})$");
re!(ISBN13, r"^(?:[0-9]{13})$");
re!(
    CREDITCARD,
    r"^(?:4[0-9]{12}(?:[0-9]{3})?|5[1-5][0-9]{14}|(222[1-9]|22[3-9][0-9]|2[3-6][0-9]{2}|27[01][0-9]|2720)[0-9]{12}|6(?:011|5[0-9][0-9])[0-9]{12}|3[47][0-9]{13}|3(?:0[0-5]|[68][0-9])[0-9]{11}|(?:2131|1800|35\d{3})\d{11}|6[27][0-9]{14})$"
);
re!(EMAIL, r"^[^@\s]+@[^@\s]+$");
re!(URI_SCHEME, r"^[a-zA-Z][a-zA-Z0-9+.\-]*:");
re!(
    GO_DURATION,
    r"^[-+]?([0-9]*(\.[0-9]*)?(ns|us|µs|μs|ms|s|m|h))+$"
);
re!(
    SCALA_DURATION,
    r"^[0-9]+\s*(ns|nano|nanos|nanosecond|nanoseconds|us|micro|micros|microsecond|microseconds|ms|milli|millis|millisecond|milliseconds|s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|w|wk|wks|week|weeks)$"
);
re!(DNS1123_LABEL, r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$");
re!(
    DNS1123_SUBDOMAIN,
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
);

fn is_datetime(s: &str) -> bool {
    if chrono::DateTime::parse_from_rfc3339(s).is_ok() {
        return true;
    }
    // strfmt also accepts ISO-8601 local times and a space-less offset.
    [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%z",
    ]
    .iter()
    .any(|f| {
        chrono::NaiveDateTime::parse_from_str(s, f).is_ok()
            || chrono::DateTime::parse_from_str(s, f).is_ok()
    })
}

/// Whether string `s` is valid for the (known) `format`.
pub fn validates(format: &str, s: &str) -> bool {
    match normalize(format).as_str() {
        "uuid" => UUID.is_match(s),
        "uuid3" => UUID3.is_match(s),
        "uuid4" => UUID4.is_match(s),
        "uuid5" => UUID5.is_match(s),
        "ipv4" => s.contains('.') && s.parse::<IpAddr>().is_ok(),
        "ipv6" => s.contains(':') && s.parse::<IpAddr>().is_ok(),
        "cidr" => s.split_once('/').is_some_and(|(ip, bits)| {
            match (ip.parse::<IpAddr>(), bits.parse::<u8>()) {
                (Ok(IpAddr::V4(_)), Ok(b)) => b <= 32 && !bits.starts_with('+'),
                (Ok(IpAddr::V6(_)), Ok(b)) => b <= 128 && !bits.starts_with('+'),
                _ => false,
            }
        }),
        "mac" => MAC.is_match(s),
        "hostname" => s.len() <= 255 && HOSTNAME.is_match(s),
        "email" => EMAIL.is_match(s),
        "uri" => URI_SCHEME.is_match(s) || s.starts_with('/'),
        "byte" => base64::engine::general_purpose::STANDARD.decode(s).is_ok(),
        "password" => true,
        "date" => chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok(),
        "datetime" => is_datetime(s),
        "duration" => GO_DURATION.is_match(s) || SCALA_DURATION.is_match(s),
        "hexcolor" => HEXCOLOR.is_match(s),
        "rgbcolor" => RGBCOLOR.is_match(s),
        "ssn" => SSN.is_match(s),
        "bsonobjectid" => BSON.is_match(s),
        "isbn10" | "isbn13" | "isbn" => {
            let d: String = s.chars().filter(|c| *c != '-' && *c != ' ').collect();
            match normalize(format).as_str() {
                "isbn10" => ISBN10.is_match(&d),
                "isbn13" => ISBN13.is_match(&d),
                _ => ISBN10.is_match(&d) || ISBN13.is_match(&d),
            }
        }
        "creditcard" => {
            let d: String = s.chars().filter(char::is_ascii_digit).collect();
            CREDITCARD.is_match(&d)
        }
        "k8sshortname" => s.len() <= 63 && DNS1123_LABEL.is_match(s),
        "k8slongname" => s.len() <= 253 && DNS1123_SUBDOMAIN.is_match(s),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_accept_and_reject_like_strfmt() {
        let cases = [
            ("uuid", "550e8400-e29b-41d4-a716-446655440000", true),
            ("uuid", "not-a-uuid", false),
            ("uuid4", "550e8400-e29b-41d4-a716-446655440000", true),
            ("ipv4", "10.0.0.1", true),
            ("ipv4", "::1", false),
            ("ipv6", "::1", true),
            ("cidr", "10.0.0.0/8", true),
            ("cidr", "10.0.0.0/33", false),
            ("mac", "01:23:45:67:89:ab", true),
            ("hostname", "web-0.example.com", true),
            ("hostname", "-bad", false),
            ("byte", "aGVsbG8=", true),
            ("byte", "%%%", false),
            ("date", "2026-11-23", true),
            ("date", "2026-13-01", false),
            ("date-time", "2026-11-23T10:00:00Z", true),
            ("date-time", "2026-11-23T10:00:00.5+01:00", true),
            ("date-time", "tomorrow", false),
            ("duration", "1h30m", true),
            ("duration", "3 days", true),
            ("duration", "soon", false),
            ("k8s-short-name", "web-0", true),
            ("k8s-short-name", "Web", false),
            ("k8s-long-name", "a.b-c.d", true),
            ("hexcolor", "#fff", true),
            ("rgbcolor", "rgb(255, 0, 12)", true),
            ("ssn", "123-45-6789", true),
            ("email", "a@b.c", true),
            ("email", "nope", false),
            ("uri", "https://x.y/z", true),
            ("uri", "x y", false),
        ];
        for (f, s, ok) in cases {
            assert!(is_known(f), "{f} known");
            assert_eq!(validates(f, s), ok, "{f} {s}");
        }
        assert!(!is_known("int32"));
        assert!(!is_known("quantity"));
    }
}
