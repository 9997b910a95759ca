//! Embeds the libtorch library folder in the binary's run path, so that `camwatch` runs
//! with no environment variables, and keeps `libtorch_cuda` linked: nothing references it
//! by symbol, and without it libtorch sees no GPU. With a CUDA build of libtorch it also
//! compiles `csrc/cuda_cache.cpp`, the one allocator call the C API lacks.

use std::path::{Path, PathBuf};

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=csrc/cuda_cache.cpp");
    println!("cargo::rustc-check-cfg=cfg(camwatch_cuda_cache)");
    if std::env::var_os("CARGO_FEATURE_TCH").is_none() {
        return;
    }
    let Some(libtorch) = std::env::var_os("LIBTORCH") else {
        return;
    };
    let libtorch = PathBuf::from(libtorch);
    let libtorch = libtorch.canonicalize().unwrap_or(libtorch);
    let lib = libtorch.join("lib");
    // The folder libtorch_cpu really lies in: LIBTORCH may be a folder of links (as
    // scripts/setup makes for the CPU), and libtorch's own run path finds the CUDA
    // runtime relative to where it lies.
    let runpath = lib
        .join("libtorch_cpu.so")
        .canonicalize()
        .ok()
        .and_then(|file| file.parent().map(Path::to_path_buf))
        .unwrap_or_else(|| lib.clone());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", runpath.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
        build_cuda_cache_shim(&libtorch, &lib);
    }
}

/// Needs only c10's own headers (torch 2.8 and later).
fn build_cuda_cache_shim(libtorch: &Path, lib: &Path) {
    let include = libtorch.join("include");
    if !include.join("c10/core/CachingDeviceAllocator.h").exists() {
        println!(
            "cargo:warning=libtorch at {} is older than 2.8: camwatch will not release cached GPU memory",
            libtorch.display()
        );
        return;
    }
    cc::Build::new()
        .cpp(true)
        .std("c++17")
        .file("csrc/cuda_cache.cpp")
        .include(&include)
        .define("_GLIBCXX_USE_CXX11_ABI", "1")
        .warnings(false)
        .compile("camwatch_cuda_cache");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-lib=dylib=c10");
    println!("cargo:rustc-cfg=camwatch_cuda_cache");
}
