//! CloudWatch's documented limits for PutMetricData, and the label rules that follow.

use std::time::Duration;

/// Datums in one request. <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html>
pub const MAX_DATUMS: usize = 1000;

/// Bytes in one request body ("limited to 1 MB", read as 10^6 to be safe; counted before
/// gzip). <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html>
pub const MAX_REQUEST_BYTES: usize = 1_000_000;

/// Dimensions per datum. <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDatum.html>
pub const MAX_DIMENSIONS: usize = 30;

/// Characters in a metric name. <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDatum.html>
pub const MAX_METRIC_NAME_LEN: usize = 255;

/// Characters in a namespace. <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html>
pub const MAX_NAMESPACE_LEN: usize = 255;

/// Characters in a dimension name. <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_Dimension.html>
pub const MAX_DIMENSION_NAME_LEN: usize = 255;

/// Characters in a dimension value. <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_Dimension.html>
pub const MAX_DIMENSION_VALUE_LEN: usize = 1024;

/// The oldest timestamp accepted: two weeks. <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html>
pub const MAX_AGE: Duration = Duration::from_secs(14 * 24 * 3600);

/// The newest timestamp accepted: two hours ahead. <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html>
pub const MAX_FUTURE: Duration = Duration::from_secs(2 * 3600);

/// Values must lie within ±2^360. <https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutMetricData.html>
pub const MAX_ABS_VALUE: f64 = 2.348_542_582_773_833_2e108; // 2^360

/// The SDK gzips request bodies from this size on (`aws-smithy-compression`'s default,
/// kept on by the client). <https://docs.aws.amazon.com/sdkref/latest/guide/feature-compression.html>
pub const GZIP_FROM_BYTES: u32 = 10_240;

/// Room kept between our timestamps and the age limits, for clock skew and bucket width.
pub const SKEW_MARGIN: Duration = Duration::from_secs(300);

/// ASCII without control characters.
pub(crate) fn printable_ascii(s: &str) -> bool {
    s.bytes().all(|b| (0x20..0x7f).contains(&b))
}

/// The rules for one dimension; the problem, in words, if it breaks one.
pub(crate) fn check_dimension(name: &str, value: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_DIMENSION_NAME_LEN {
        return Err(format!(
            "a dimension name must be 1 to {MAX_DIMENSION_NAME_LEN} characters"
        ));
    }
    if !printable_ascii(name) || name.trim().is_empty() || name.starts_with(':') {
        return Err(
            "a dimension name must be ASCII without control characters, not blank, not starting with ':'"
                .to_owned(),
        );
    }
    if value.is_empty() || value.len() > MAX_DIMENSION_VALUE_LEN {
        return Err(format!(
            "a dimension value must be 1 to {MAX_DIMENSION_VALUE_LEN} characters"
        ));
    }
    if !printable_ascii(value) || value.trim().is_empty() {
        return Err(
            "a dimension value must be ASCII without control characters and not blank".to_owned(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_abs_value_is_two_to_the_360() {
        assert_eq!(MAX_ABS_VALUE, 2f64.powi(360));
    }

    #[test]
    fn dimension_rules() {
        let cases: &[(&str, &str, bool)] = &[
            ("path", "derp", true),
            ("path", "", false),
            ("", "derp", false),
            (":path", "derp", false),
            ("path", "  ", false),
            ("path", "a\tb", false),
            ("path", "ünï", false),
            ("path", "a b", true),
        ];
        for (name, value, ok) in cases {
            assert_eq!(
                check_dimension(name, value).is_ok(),
                *ok,
                "{name}={value:?}"
            );
        }
        assert!(check_dimension("x", &"v".repeat(MAX_DIMENSION_VALUE_LEN)).is_ok());
        assert!(check_dimension("x", &"v".repeat(MAX_DIMENSION_VALUE_LEN + 1)).is_err());
        assert!(check_dimension(&"n".repeat(MAX_DIMENSION_NAME_LEN + 1), "v").is_err());
    }
}
