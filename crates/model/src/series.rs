use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// What a published value measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Unit {
    Bytes,
    Count,
    /// A dimensionless value such as a region id.
    None,
}

impl Unit {
    pub const fn as_str(self) -> &'static str {
        match self {
            Unit::Bytes => "bytes",
            Unit::Count => "count",
            Unit::None => "none",
        }
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A catalog name or a dimension name: borrowed from the catalog when it comes from there
/// (no copy per series: at 10k series the copies were most of a series' memory), owned
/// otherwise (names derived from the exposition, a checkpoint's series).
pub type Name = Cow<'static, str>;

/// The dimensions of a series: `(name, value)` pairs sorted by name, names unique.
///
/// Serialized as a JSON object (`{"path": "derp"}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Dimensions(Vec<(Name, String)>);

impl Dimensions {
    /// No dimensions: the catalog aggregate of a family.
    pub const fn none() -> Self {
        Self(Vec::new())
    }

    /// Builds dimensions from pairs in any order; of two pairs with one name the last wins.
    /// A name is borrowed when it is a `&'static str`, owned when it is a `String`.
    pub fn new<K: Into<Name>, V: Into<String>>(pairs: impl IntoIterator<Item = (K, V)>) -> Self {
        let mut v: Vec<(Name, String)> = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        v.reverse();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v.dedup_by(|a, b| a.0 == b.0);
        Self(v)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, v.as_str()))
    }
}

impl fmt::Display for Dimensions {
    /// `path=derp,reason=acl`; empty for the aggregate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, (k, v)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}={v}")?;
        }
        Ok(())
    }
}

impl Serialize for Dimensions {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Dimensions {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let map = std::collections::BTreeMap::<String, String>::deserialize(d)?;
        Ok(Self(
            map.into_iter().map(|(k, v)| (Name::Owned(k), v)).collect(),
        ))
    }
}

/// One published series: a catalog name, its dimensions and its unit.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Series {
    /// The catalog name, e.g. `tailscale.bytes.sent.total`.
    pub name: Name,
    pub dimensions: Dimensions,
    pub unit: Unit,
}

impl fmt::Display for Series {
    /// `tailscale.bytes.sent.total{path=derp}`, or the bare name for an aggregate.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if !self.dimensions.is_empty() {
            write!(f, "{{{}}}", self.dimensions)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dimensions_are_sorted_unique_and_last_wins() {
        let d = Dimensions::new([("reason", "acl"), ("path", "derp"), ("reason", "error")]);
        assert_eq!(d.to_string(), "path=derp,reason=error");
        assert_eq!(d.get("reason"), Some("error"));
        assert_eq!(d.get("nope"), None);
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn series_display_and_json() {
        let s = Series {
            name: "tailscale.bytes.sent.total".into(),
            dimensions: Dimensions::new([("path", "derp")]),
            unit: Unit::Bytes,
        };
        assert_eq!(s.to_string(), "tailscale.bytes.sent.total{path=derp}");
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"{"name":"tailscale.bytes.sent.total","dimensions":{"path":"derp"},"unit":"bytes"}"#
        );
        assert_eq!(serde_json::from_str::<Series>(&json).unwrap(), s);
        let agg = Series {
            dimensions: Dimensions::none(),
            ..s
        };
        assert_eq!(agg.to_string(), "tailscale.bytes.sent.total");
    }
}
