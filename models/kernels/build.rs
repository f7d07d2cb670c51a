//! Links the system OpenBLAS when the `blas` feature is on (Debian: `libopenblas-dev`, which
//! `make setup` installs). Only `cblas_sgemm`, `cblas_dgemm` and `openblas_set_num_threads` are
//! used; see `src/blas.rs`.

use std::path::Path;
use std::process::Command;

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-env-changed=VIPA_OPENBLAS_LIB_DIR");
    if std::env::var_os("CARGO_FEATURE_BLAS").is_none() {
        return;
    }
    // An explicit directory wins, then pkg-config, then the usual system directories.
    if let Some(dir) = std::env::var_os("VIPA_OPENBLAS_LIB_DIR") {
        println!(
            "cargo::rustc-link-search=native={}",
            Path::new(&dir).display()
        );
        println!("cargo::rustc-link-lib=dylib=openblas");
        return;
    }
    let pkg = Command::new("pkg-config")
        .args(["--libs-only-L", "openblas"])
        .output();
    if let Ok(out) = pkg
        && out.status.success()
    {
        for flag in String::from_utf8_lossy(&out.stdout).split_whitespace() {
            if let Some(dir) = flag.strip_prefix("-L") {
                println!("cargo::rustc-link-search=native={dir}");
            }
        }
        println!("cargo::rustc-link-lib=dylib=openblas");
        return;
    }
    let found = [
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/usr/lib64",
        "/usr/lib",
        "/usr/local/lib",
        "/opt/homebrew/opt/openblas/lib",
    ]
    .iter()
    .find(|d| {
        ["libopenblas.so", "libopenblas.dylib", "libopenblas.a"]
            .iter()
            .any(|f| Path::new(d).join(f).exists())
    });
    match found {
        Some(dir) => {
            println!("cargo::rustc-link-search=native={dir}");
            println!("cargo::rustc-link-lib=dylib=openblas");
        }
        None => println!(
            "cargo::error=vipa-kernels feature `blas` needs the system OpenBLAS: install it \
             (`make setup`, or `apt-get install libopenblas-dev`), point VIPA_OPENBLAS_LIB_DIR \
             at the directory holding libopenblas.so, or build with --no-default-features"
        ),
    }
}
