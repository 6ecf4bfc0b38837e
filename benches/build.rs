//! Detects whether the TCP in this tree has selectable congestion control (a `congestion` field
//! in `TcpConfig`, with CUBIC), so that the goodput bench measures whatever exists.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(tapir_has_cubic)");
    let src = "../protocols/src/tcp/mod.rs";
    println!("cargo::rerun-if-changed={src}");
    let text = std::fs::read_to_string(src).unwrap_or_default();
    if text.contains("pub congestion: CongestionAlgorithm") {
        println!("cargo::rustc-cfg=tapir_has_cubic");
    }
}
