//! What the fake keeps of an accepted request.

/// One accepted request.
#[derive(Clone, Debug, PartialEq)]
pub struct PutRequest {
    pub namespace: String,
    pub datums: Vec<Datum>,
    /// Whether the body came gzip-compressed.
    pub gzip: bool,
    /// The body's size as sent, and decompressed.
    pub wire_bytes: usize,
    pub cbor_bytes: usize,
    /// The decoded body in CBOR diagnostic notation, for snapshots.
    pub diagnostic: String,
    /// How long the fake waited, after writing the datums, before answering
    /// ([`FakeCloudWatch::set_answer_delay`](crate::FakeCloudWatch::set_answer_delay)): a client
    /// with a shorter timeout never learnt that they were written.
    pub answer_delay: std::time::Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Datum {
    pub metric_name: String,
    /// In the order sent.
    pub dimensions: Vec<(String, String)>,
    /// Seconds since the epoch.
    pub timestamp: Option<f64>,
    pub value: Option<f64>,
    pub statistic_values: Option<StatisticSet>,
    pub values: Option<Vec<f64>>,
    pub counts: Option<Vec<f64>>,
    pub unit: Option<String>,
    pub storage_resolution: Option<i128>,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StatisticSet {
    pub sample_count: f64,
    pub sum: f64,
    pub minimum: f64,
    pub maximum: f64,
}

impl Datum {
    /// `name{k=v,…}` with dimensions sorted by name; the bare name without any.
    pub fn key(&self) -> String {
        let mut dims = self.dimensions.clone();
        dims.sort();
        if dims.is_empty() {
            return self.metric_name.clone();
        }
        let dims: Vec<String> = dims.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}{{{}}}", self.metric_name, dims.join(","))
    }

    /// What CloudWatch adds to the metric's `Sum`.
    pub fn sum(&self) -> f64 {
        if let Some(s) = &self.statistic_values {
            return s.sum;
        }
        if let Some(values) = &self.values {
            let counts = self
                .counts
                .clone()
                .unwrap_or_else(|| vec![1.0; values.len()]);
            return values.iter().zip(counts).map(|(v, c)| v * c).sum();
        }
        self.value.unwrap_or(0.0)
    }
}
