//! Tells the code whether this browser build is being split into several wasm files
//! (`cargo leptos build --split`, which links with `--emit-relocs`).
//!
//! Split (`cfg(kefu_split)`), everything but the widget frame is behind a `#[lazy]` function
//! (`hydrate_app` in `lib.rs`): its code lands in a separate wasm file that only the other pages
//! download, so the widget stays small. Without `--split` (a plain `cargo leptos build`,
//! `cargo leptos watch`) a lazy function would import a module that does not exist, so it is an
//! ordinary function and everything is in one wasm file, as before.

fn main() {
    println!("cargo::rustc-check-cfg=cfg(kefu_split)");
    println!("cargo::rerun-if-env-changed=CARGO_ENCODED_RUSTFLAGS");
    let wasm = std::env::var("CARGO_CFG_TARGET_ARCH").is_ok_and(|a| a == "wasm32");
    let relocs = std::env::var("CARGO_ENCODED_RUSTFLAGS")
        .is_ok_and(|f| f.split('\x1f').any(|flag| flag.contains("--emit-relocs")));
    if wasm && relocs {
        println!("cargo::rustc-cfg=kefu_split");
    }
}
