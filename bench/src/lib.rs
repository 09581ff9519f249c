//! Benchmarks for Portcullis: see bench/README.md.
