//! Int-or-percent values (`maxUnavailable`, PDB `minAvailable`/`maxUnavailable`) resolved against a
//! replica count, with the same rounding and parsing as upstream's
//! `intstr.GetScaledValueFromIntOrPercent` (k8s.io/apimachinery/pkg/util/intstr/intstr.go).

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Why an int-or-percent value could not be resolved.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IntOrPercentError {
    /// A string that is not `<integer>%`.
    #[error("invalid value {0:?}: must be an integer or a percentage such as \"10%\"")]
    NotAPercent(String),
}

/// Resolves `value` against `total`: an integer is taken as is; `"N%"` is `total × N / 100`, rounded
/// up when `round_up`, down otherwise (upstream rounds up for maxUnavailable/maxSurge of workloads and
/// for a PDB's `maxUnavailable`, and up for a PDB's `minAvailable` too — see the disruption controller).
pub fn scaled_value(
    value: &IntOrString,
    total: i32,
    round_up: bool,
) -> Result<i32, IntOrPercentError> {
    match value {
        IntOrString::Int(i) => Ok(*i),
        IntOrString::String(s) => {
            let pct: i64 = s
                .strip_suffix('%')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| IntOrPercentError::NotAPercent(s.clone()))?;
            let product = pct * i64::from(total);
            let v = if round_up {
                (product + 99).div_euclid(100)
            } else {
                product.div_euclid(100)
            };
            Ok(i32::try_from(v).unwrap_or(if v < 0 { i32::MIN } else { i32::MAX }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentages_round_as_upstream() {
        let s = |v: &str| IntOrString::String(v.into());
        assert_eq!(scaled_value(&s("10%"), 15, true), Ok(2));
        assert_eq!(scaled_value(&s("10%"), 15, false), Ok(1));
        assert_eq!(scaled_value(&s("50%"), 20, true), Ok(10));
        assert_eq!(scaled_value(&s("0%"), 20, true), Ok(0));
        assert_eq!(scaled_value(&IntOrString::Int(3), 20, true), Ok(3));
    }

    #[test]
    fn a_string_without_percent_sign_is_an_error() {
        assert_eq!(
            scaled_value(&IntOrString::String("ten".into()), 10, true),
            Err(IntOrPercentError::NotAPercent("ten".into()))
        );
    }
}
