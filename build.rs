//! Hands link/symbol-order.txt to the linker when it is lld (the static musl build's, set in
//! .cargo/config.toml): a scrape's functions are then laid out side by side, so a scrape
//! touches a third of the pages of code it otherwise would (docs/PERFORMANCE.md, "Code
//! layout"). Any other linker links as usual. bench/link_order.py writes the file.

use std::{env, path::Path};

fn main() {
    let root = env::var("CARGO_MANIFEST_DIR").expect("set by cargo");
    let root = Path::new(&root);
    let order = root.join("link").join("symbol-order.txt");
    println!("cargo::rerun-if-changed={}", order.display());
    // RUSTC_LINKER is cargo's to set, so a change of linker is seen where it is made: the
    // project's configuration, or the environment's override for the target.
    println!(
        "cargo::rerun-if-changed={}",
        root.join(".cargo").join("config.toml").display()
    );
    let target = env::var("TARGET").expect("set by cargo");
    println!(
        "cargo::rerun-if-env-changed=CARGO_TARGET_{}_LINKER",
        target.to_uppercase().replace(['-', '.'], "_")
    );
    let lld = env::var("RUSTC_LINKER").is_ok_and(|linker| {
        let name = Path::new(&linker)
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("");
        matches!(name, "rust-lld" | "ld.lld" | "lld")
    });
    if lld && order.exists() {
        println!(
            "cargo::rustc-link-arg-bin=tailship=--symbol-ordering-file={}",
            order.display()
        );
        // Symbols the file names but the build no longer has (after a dependency or the
        // compiler changed) are skipped; `python3 bench/link_order.py --check` counts them.
        println!("cargo::rustc-link-arg-bin=tailship=--no-warn-symbol-ordering");
    }
}
