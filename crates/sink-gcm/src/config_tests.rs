//! Every key, its default, and the message for each bad value.

use super::*;

fn parse(text: &str) -> Result<Config, String> {
    let c: Config = toml::from_str(text).map_err(|e| e.to_string())?;
    c.validate().map_err(|e| e.to_string())?;
    Ok(c)
}

#[test]
fn defaults() {
    let c = parse("").unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.metric_prefix, "workload.googleapis.com/");
    assert_eq!(c.endpoint, "https://monitoring.googleapis.com");
    assert!(c.breaks_down("tailscale.bytes.sent.total"));
    assert!(!c.breaks_down("tailscale.packets.sent.dropped.total"));
}

#[test]
fn every_key() {
    let c = parse(
        r#"
        project_id = "my-project-1"
        metric_prefix = "custom.googleapis.com/tailship/"
        endpoint = "http://127.0.0.1:8085"
        timeout = "5s"
        breakdowns = ["tailscale.bytes.sent.total"]
        resource = { type = "generic_node", labels = { location = "eu", namespace = "lab", node_id = "n1" } }
        "#,
    )
    .unwrap();
    assert_eq!(c.project_id.as_deref(), Some("my-project-1"));
    assert_eq!(c.timeout, Duration::from_secs(5));
    assert!(c.breaks_down("tailscale.bytes.sent.total"));
    assert!(!c.breaks_down("tailscale.bytes.received.total"));
    let r = c.resource.unwrap();
    assert_eq!(r.kind, "generic_node");
    assert_eq!(r.labels["node_id"], "n1");
    assert!(
        parse("breakdowns = [\"*\"]")
            .unwrap()
            .breaks_down("tailscale.x")
    );
    assert!(
        !parse("breakdowns = []")
            .unwrap()
            .breaks_down("tailscale.bytes.sent.total")
    );
}

/// Each bad value is refused with the key it is under.
#[test]
fn bad_values_name_the_key() {
    let cases = [
        ("projectid = \"p\"", "unknown field `projectid`"),
        ("project_id = \"My Project\"", "[sinks.gcm] project_id"),
        ("metric_prefix = \"tailscale\"", "[sinks.gcm] metric_prefix"),
        (
            "endpoint = \"monitoring.googleapis.com\"",
            "[sinks.gcm] endpoint",
        ),
        ("timeout = \"1ms\"", "[sinks.gcm] timeout"),
        ("timeout = \"soon\"", "write a duration"),
        ("breakdowns = \"path\"", "expected a sequence"),
        ("breakdowns = [\"Bytes Sent\"]", "[sinks.gcm] breakdowns"),
        ("resource = { type = \"vm\" }", "[sinks.gcm] resource.type"),
        (
            "resource = { type = \"gce_instance\", labels = { zone = \"z\" } }",
            "needs the label \"instance_id\"",
        ),
        (
            "resource = { type = \"global\", labels = { node = \"x\" } }",
            "resource.labels.node",
        ),
        ("resource = { kind = \"global\" }", "unknown field `kind`"),
    ];
    for (text, expected) in cases {
        let err = parse(text).expect_err(text);
        assert!(
            err.contains(expected),
            "{text:?}: {err:?} lacks {expected:?}"
        );
    }
}

#[test]
fn project_ids_and_numbers() {
    for ok in [
        "my-project",
        "a12345",
        "123456789012",
        "example.com:my-proj",
    ] {
        assert!(valid_project_id(ok), "{ok}");
    }
    for bad in [
        "",
        "abc",
        "My-Project",
        "1project",
        "project-",
        "a b c d e f",
    ] {
        assert!(!valid_project_id(bad), "{bad}");
    }
}
