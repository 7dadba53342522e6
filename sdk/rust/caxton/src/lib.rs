//! Caxton's Rust SDK for tool modules.
//!
//! A tool module is a WebAssembly module (`wasm32-unknown-unknown`) whose exported functions
//! `extern "C" fn NAME() -> i32` are tools. Caxton's sandbox speaks Extism's kernel ABI
//! (`extism:host/env`) plus Caxton's own host functions (`extism:host/user`); this crate declares
//! them and wraps them: input, output, errors, configuration, state, logging, HTTP, files,
//! read-only SQLite, and a small JSON reader and writer. It has no dependencies, so it builds
//! with Debian's `rustc` and `libstd-rust-dev-wasm32` alone (Rust 1.63 or newer).
//!
//! ```ignore
//! #[no_mangle]
//! pub extern "C" fn greet() -> i32 {
//!     caxton::tool(|args| {
//!         let name = args.get("name").and_then(|v| v.as_str()).ok_or("argument \"name\" is required")?;
//!         Ok(caxton::Json::object(vec![("greeting", caxton::Json::from(format!("Hello, {}!", name)))]))
//!     })
//! }
//! ```

#![allow(clippy::missing_safety_doc)]

pub mod host {
    //! The raw host functions. Offsets are in the host's kernel memory; 0 means none.
    #[link(wasm_import_module = "extism:host/env")]
    extern "C" {
        pub fn alloc(n: u64) -> u64;
        pub fn length(offset: u64) -> u64;
        pub fn load_u8(offset: u64) -> u32;
        pub fn load_u64(offset: u64) -> u64;
        pub fn store_u8(offset: u64, v: u32);
        pub fn store_u64(offset: u64, v: u64);
        pub fn input_length() -> u64;
        pub fn input_load_u8(offset: u64) -> u32;
        pub fn input_load_u64(offset: u64) -> u64;
        pub fn output_set(offset: u64, n: u64);
        pub fn error_set(offset: u64);
        pub fn config_get(key: u64) -> u64;
        pub fn var_get(key: u64) -> u64;
        pub fn var_set(key: u64, value: u64);
        pub fn http_request(request: u64, body: u64) -> u64;
        pub fn http_status_code() -> i32;
        pub fn log_info(offset: u64);
    }
    #[link(wasm_import_module = "extism:host/user")]
    extern "C" {
        pub fn caxton_file_read(path: u64) -> u64;
        pub fn caxton_file_write(path: u64, data: u64);
        pub fn caxton_file_list(path: u64) -> u64;
        pub fn caxton_sqlite_query(request: u64) -> u64;
    }
}

/// Copies bytes into a new kernel block, 8 bytes per host call.
pub fn block_from(data: &[u8]) -> u64 {
    unsafe {
        let b = host::alloc(data.len() as u64);
        let mut chunks = data.chunks_exact(8);
        let mut i = 0u64;
        for c in &mut chunks {
            host::store_u64(b + i, u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]));
            i += 8;
        }
        for &byte in chunks.remainder() {
            host::store_u8(b + i, byte as u32);
            i += 1;
        }
        b
    }
}

/// A kernel block's bytes (None for block 0).
pub fn block_read(b: u64) -> Option<Vec<u8>> {
    if b == 0 {
        return None;
    }
    unsafe {
        let n = host::length(b) as usize;
        let mut out = Vec::with_capacity(n);
        let mut i = 0usize;
        while i + 8 <= n {
            out.extend_from_slice(&host::load_u64(b + i as u64).to_le_bytes());
            i += 8;
        }
        while i < n {
            out.push(host::load_u8(b + i as u64) as u8);
            i += 1;
        }
        Some(out)
    }
}

fn block_text(b: u64) -> Option<String> {
    block_read(b).map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// The call's input: the tool arguments as JSON text.
pub fn input() -> Vec<u8> {
    unsafe {
        let n = host::input_length() as usize;
        let mut out = Vec::with_capacity(n);
        let mut i = 0usize;
        while i + 8 <= n {
            out.extend_from_slice(&host::input_load_u64(i as u64).to_le_bytes());
            i += 8;
        }
        while i < n {
            out.push(host::input_load_u8(i as u64) as u8);
            i += 1;
        }
        out
    }
}

/// Sets the call's output (what the model sees).
pub fn output(data: &[u8]) {
    unsafe { host::output_set(block_from(data), data.len() as u64) }
}

/// Reports an error to the model; return its result from the tool function.
pub fn fail(message: &str) -> i32 {
    unsafe { host::error_set(block_from(message.as_bytes())) };
    1
}

/// Runs a JSON-in, JSON-out tool: parses the input, calls `f`, and sets the output or the error.
pub fn tool<F>(f: F) -> i32
where
    F: FnOnce(&Json) -> Result<Json, String>,
{
    let raw = input();
    let text = match std::str::from_utf8(&raw) {
        Ok(t) => t,
        Err(_) => return fail("the arguments are not UTF-8 text"),
    };
    let args = match Json::parse(text) {
        Ok(v) => v,
        Err(e) => return fail(&format!("the arguments are not JSON: {}", e)),
    };
    match f(&args) {
        Ok(v) => {
            output(v.to_string().as_bytes());
            0
        }
        Err(e) => fail(&e),
    }
}

/// A value declared in the manifest's `[config]`.
pub fn config(key: &str) -> Option<String> {
    block_text(unsafe { host::config_get(block_from(key.as_bytes())) })
}

/// State kept between calls, up to `limits.max_state`.
pub fn var_get(key: &str) -> Option<Vec<u8>> {
    block_read(unsafe { host::var_get(block_from(key.as_bytes())) })
}

pub fn var_set(key: &str, value: &[u8]) {
    unsafe { host::var_set(block_from(key.as_bytes()), block_from(value)) }
}

/// A line in the server log.
pub fn log(message: &str) {
    unsafe { host::log_info(block_from(message.as_bytes())) }
}

/// HTTP to hosts the manifest and the operator allow; returns (status, body).
pub fn http(method: &str, url: &str, body: Option<&[u8]>) -> (i32, Vec<u8>) {
    let req = Json::object(vec![("method", Json::from(method)), ("url", Json::from(url)), ("headers", Json::object(vec![]))]);
    unsafe {
        let res = host::http_request(block_from(req.to_string().as_bytes()), body.map(block_from).unwrap_or(0));
        (host::http_status_code(), block_read(res).unwrap_or_default())
    }
}

/// Files under the roots the manifest declares in `[permissions.paths]` (guest paths like "/data/x").
pub fn file_read(path: &str) -> Vec<u8> {
    block_read(unsafe { host::caxton_file_read(block_from(path.as_bytes())) }).unwrap_or_default()
}

pub fn file_write(path: &str, data: &[u8]) {
    unsafe { host::caxton_file_write(block_from(path.as_bytes()), block_from(data)) }
}

/// The names in a directory, as JSON array text.
pub fn file_list(path: &str) -> String {
    block_text(unsafe { host::caxton_file_list(block_from(path.as_bytes())) }).unwrap_or_default()
}

/// Read-only SQLite: `request` is {"database","sql","params","max_rows"}; returns the answer's JSON text.
pub fn sqlite_query(request: &Json) -> String {
    block_text(unsafe { host::caxton_sqlite_query(block_from(request.to_string().as_bytes())) }).unwrap_or_default()
}

mod json;
pub use json::Json;
