//! Compiles `src/analyse/parser.c`, pgwarden's entry into PostgreSQL's
//! parser (the libpg_query objects the pg_query crate links), and routes
//! libpg_query's calls to upb_Encode through it (see that file's header).

fn main() {
    println!("cargo:rerun-if-changed=src/analyse/parser.c");
    println!("cargo:rerun-if-changed=third_party/upb");
    cc::Build::new()
        .file("src/analyse/parser.c")
        .include("third_party/upb")
        .flag_if_supported("-fno-strict-aliasing")
        .flag_if_supported("-fwrapv")
        .warnings(true)
        // upb's headers have unused parameters.
        .flag_if_supported("-Wno-unused-parameter")
        .compile("pgwarden_parser");
    // Every binary, test and bench links libpg_query, so every one of them
    // takes the wrapper: only pgwarden_parse's own thread-local flag turns
    // the faster encoder on.
    println!("cargo:rustc-link-arg=-Wl,--wrap=upb_Encode");
}
