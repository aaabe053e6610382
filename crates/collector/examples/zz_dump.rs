#![allow(clippy::print_stdout, clippy::unwrap_used)]
fn main() {
    for path in std::env::args().skip(1) {
        let body = std::fs::read(&path).unwrap();
        let name = path.rsplit('/').nth(1).unwrap_or(&path).to_string();
        let errs: Vec<String> = tailship_collector::parse(&body)
            .filter_map(|r| r.err())
            .map(|e| e.to_string())
            .collect();
        println!(
            "{name}: {}",
            if errs.is_empty() {
                "OK".to_string()
            } else {
                errs.join(" | ")
            }
        );
    }
}
