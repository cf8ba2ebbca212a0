//! Compiles the PostgreSQL variants of the HTTP tests only when `DATABASE_URL` is set, so a run
//! without PostgreSQL reports fewer tests instead of tests that silently pass.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(ferrosync_pg)");
    println!("cargo::rerun-if-env-changed=DATABASE_URL");
    if std::env::var("DATABASE_URL").is_ok_and(|u| !u.is_empty()) {
        println!("cargo::rustc-cfg=ferrosync_pg");
    }
}
